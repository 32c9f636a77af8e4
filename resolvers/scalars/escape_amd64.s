//go:build !purego

#include "go_asm.h"
#include "textflag.h"

// func escapeAVX2(dst *byte, dstLen int, src *byte, srcLen int, tables *avx2Tables) (read, written int)
//
// Registers: SI is the next byte of src to escape, DI the next byte of dst
// to write; R9 is the last SI with avx2MinSrc bytes left to read, R10 the
// last DI with avx2MinDst bytes of room; R11 is tables. Y13, Y14 and Y15
// hold 0x1f, '"' and '\\' in every byte, Y10 and Y11 tables.short and
// tables.letters. The other registers hold masks of a block, a bit for
// each byte, or are scratch.
TEXT ·escapeAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ dstLen+8(FP), R10
	MOVQ src+16(FP), SI
	MOVQ srcLen+24(FP), R9
	MOVQ tables+32(FP), R11
	CMPQ R9, $const_avx2MinSrc
	JLT  none
	CMPQ R10, $const_avx2MinDst
	JLT  none
	LEAQ -const_avx2MinSrc(SI)(R9*1), R9
	LEAQ -const_avx2MinDst(DI)(R10*1), R10

	// VMOVQ, not MOVQ: an SSE instruction after an AVX one that wrote a
	// whole Y register costs hundreds of nanoseconds on some machines.
	MOVL         $0x1f, AX
	VMOVQ        AX, X13
	VPBROADCASTB X13, Y13
	MOVL         $0x22, AX
	VMOVQ        AX, X14
	VPBROADCASTB X14, Y14
	MOVL         $0x5c, AX
	VMOVQ        AX, X15
	VPBROADCASTB X15, Y15
	VMOVDQU      avx2Tables_short(R11), Y10
	VMOVDQU      avx2Tables_letters(R11), Y11

block:
	CMPQ SI, R9
	JHI  done
	CMPQ DI, R10
	JHI  done

	// Store the block whole: if it is plain, that is all it takes.
	VMOVDQU (SI), Y0
	VMOVDQU Y0, (DI)

	// Y1 marks the bytes to escape: those at most 0x1f (the only ones the
	// minimum with 0x1f leaves as they are), '"' and '\\'. Bytes of 0x80
	// or more have their own high bit set in Y0.
	VPMINUB   Y13, Y0, Y1
	VPCMPEQB  Y0, Y1, Y1
	VPCMPEQB  Y14, Y0, Y2
	VPCMPEQB  Y15, Y0, Y3
	VPOR      Y2, Y1, Y1
	VPOR      Y3, Y1, Y1
	VPOR      Y0, Y1, Y2
	VPMOVMSKB Y2, AX
	TESTL     AX, AX
	JNZ       special
	ADDQ      $32, SI
	ADDQ      $32, DI
	JMP       block

special:
	// AX is the bytes to escape, BX the bytes of 0x80 or more, and then
	// the first bytes of the sequences that escapeAVX2 stops at (see utf8).
	VPMOVMSKB Y1, AX
	VPMOVMSKB Y0, BX
	TESTL     BX, BX
	JNZ       utf8

short:
	// If every escape is two bytes long, spread each group of eight bytes
	// out with VPSHUFB, from their escaped form (the letter in place of
	// each byte to escape) and backslashes. A byte that short holds at
	// its low four bits has a two-byte escape (VPSHUFB reads the low four
	// bits of bytes below 0x80, and makes zero of the others, which are
	// copied as they are).
	VPSHUFB   Y0, Y10, Y2
	VPCMPEQB  Y0, Y2, Y2
	VPANDN    Y1, Y2, Y3
	VPTEST    Y3, Y3
	JNZ       each
	VPSHUFB   Y0, Y11, Y2
	VPBLENDVB Y1, Y2, Y0, Y2

	// Each group of eight bytes, then eight backslashes: X3 and X4 the
	// first two groups, X5 and X6 the last two.
	VPUNPCKLQDQ  Y15, Y2, Y3
	VPUNPCKHQDQ  Y15, Y2, Y4
	VEXTRACTI128 $1, Y3, X5
	VEXTRACTI128 $1, Y4, X6

	// A group takes eight bytes and one more for each byte to escape.
	MOVBLZX AX, CX
	POPCNTL CX, DX
	SHLL    $4, CX
	VPSHUFB avx2Tables_expand(R11)(CX*1), X3, X7
	VMOVDQU X7, (DI)
	LEAQ    8(DI)(DX*1), DI

	MOVL    AX, CX
	SHRL    $8, CX
	MOVBLZX CX, CX
	POPCNTL CX, DX
	SHLL    $4, CX
	VPSHUFB avx2Tables_expand(R11)(CX*1), X4, X7
	VMOVDQU X7, (DI)
	LEAQ    8(DI)(DX*1), DI

	MOVL    AX, CX
	SHRL    $16, CX
	MOVBLZX CX, CX
	POPCNTL CX, DX
	SHLL    $4, CX
	VPSHUFB avx2Tables_expand(R11)(CX*1), X5, X7
	VMOVDQU X7, (DI)
	LEAQ    8(DI)(DX*1), DI

	SHRL    $24, AX
	POPCNTL AX, DX
	SHLL    $4, AX
	VPSHUFB avx2Tables_expand(R11)(AX*1), X6, X7
	VMOVDQU X7, (DI)
	LEAQ    8(DI)(DX*1), DI

	ADDQ $32, SI
	JMP  block

utf8:
	// Find the continuation bytes (CX), the first bytes of two-byte
	// sequences (DX) and those of the three-byte ones that escapeAVX2
	// copies (R8). Such sequences are valid where the continuation bytes
	// are just those that the first bytes ask for (R13), and no others of
	// 0x80 or more are in the block.
	VMOVDQU   avx2Tables_cont(R11), Y2
	VPCMPGTB  Y0, Y2, Y2
	VPMOVMSKB Y2, CX
	VPSUBB    avx2Tables_lead2(R11), Y0, Y3
	VPMINUB   avx2Tables_span2(R11), Y3, Y4
	VPCMPEQB  Y3, Y4, Y4
	VPMOVMSKB Y4, DX
	VPSUBB    avx2Tables_lead3(R11), Y0, Y3
	VPMINUB   avx2Tables_span3(R11), Y3, Y4
	VPCMPEQB  Y3, Y4, Y4
	VPCMPEQB  avx2Tables_surrogate(R11), Y0, Y3
	VPANDN    Y4, Y3, Y4
	VPMOVMSKB Y4, R8
	MOVQ      DX, R12
	ORQ       R8, R12
	LEAQ      (R12)(R12*1), R13
	MOVQ      R8, R14
	SHLQ      $2, R14
	ORQ       R14, R13

	// BX becomes the bytes that start what escapeAVX2 leaves to the Go
	// code: other bytes of 0x80 or more, continuation bytes that no first
	// byte asks for (R14), and first bytes whose continuation bytes are
	// missing or past the block (R13 holds where they are missing).
	ANDNQ CX, R13, R14
	ANDNQ R13, CX, R13
	ORQ   R12, CX
	ANDNQ BX, CX, BX
	ORQ   R14, BX
	SHRQ  $1, R13
	MOVQ  R13, R14
	ANDQ  R12, R13
	ORQ   R13, BX
	SHRQ  $1, R14
	ANDQ  R8, R14
	ORQ   R14, BX
	TESTL BX, BX
	JZ    short

each:
	// Otherwise, escape the bytes one by one. Only those before the first
	// byte in BX count (all of them when there is none: BLSMSK of zero is
	// all ones; the bit of that byte itself is clear in AX). BX becomes
	// the offset of that byte, or 32, and R8 the block.
	BLSMSKL BX, CX
	ANDL    CX, AX
	TZCNTL  BX, BX
	MOVQ    SI, R8
	TESTL   AX, AX
	JZ      rest

next:
	// The plain bytes from SI to the byte to escape at DX are in dst
	// already. Store the escape after them, then reload the 32 bytes after
	// it and store them after the escape: they hold the plain bytes up to
	// the next byte to escape, or to the end of the block.
	TZCNTL  AX, DX
	ADDQ    R8, DX
	MOVQ    DX, CX
	SUBQ    SI, CX
	ADDQ    CX, DI
	MOVBLZX (DX), CX
	MOVQ    avx2Tables_escapes(R11)(CX*8), CX
	MOVQ    CX, (DI)
	SHRQ    $56, CX
	ADDQ    CX, DI
	LEAQ    1(DX), SI
	VMOVDQU (SI), Y0
	VMOVDQU Y0, (DI)
	BLSRL   AX, AX
	JNZ     next

rest:
	// The plain bytes from SI to the end of the block, or to the first
	// byte in BX, are in dst already. Before such a byte, stop.
	LEAQ (R8)(BX*1), DX
	MOVQ DX, CX
	SUBQ SI, CX
	ADDQ CX, DI
	MOVQ DX, SI
	CMPL BX, $32
	JEQ  block

done:
	VZEROUPPER
	SUBQ src+16(FP), SI
	SUBQ dst+0(FP), DI
	MOVQ SI, read+40(FP)
	MOVQ DI, written+48(FP)
	RET

none:
	MOVQ $0, read+40(FP)
	MOVQ $0, written+48(FP)
	RET
