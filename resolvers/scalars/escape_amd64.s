//go:build !purego

#include "textflag.h"

// func escapeAVX2(dst *byte, dstLen int, src *byte, srcLen int, table *[256]uint64) (read, written int)
//
// Registers: SI is the next byte of src to escape, DI the next byte of dst
// to write; R9 is the last SI with 64 bytes left to read, R10 the last DI
// with avx2MinDst bytes of room; R11 is the table; Y13, Y14 and Y15 hold
// 0x1f, '"' and '\\' in every byte.
TEXT ·escapeAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ dstLen+8(FP), R10
	MOVQ src+16(FP), SI
	MOVQ srcLen+24(FP), R9
	MOVQ table+32(FP), R11
	CMPQ R9, $64
	JLT  none
	CMPQ R10, $224
	JLT  none
	LEAQ -64(SI)(R9*1), R9
	LEAQ -224(DI)(R10*1), R10

	MOVL         $0x1f, AX
	VMOVQ        AX, X13
	VPBROADCASTB X13, Y13
	MOVL         $0x22, AX
	VMOVQ        AX, X14
	VPBROADCASTB X14, Y14
	MOVL         $0x5c, AX
	VMOVQ        AX, X15
	VPBROADCASTB X15, Y15

block:
	CMPQ SI, R9
	JHI  done
	CMPQ DI, R10
	JHI  done

	// Store the block whole: if it is plain, that is all it takes, and
	// otherwise its bytes up to the first special one are in place.
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
	// AX is the bytes to escape, before the first of 0x80 or more (all of
	// them when there is none: BLSMSK of zero is all ones; the bit of that
	// byte itself is clear in AX). BX is the offset of that byte, or 32.
	VPMOVMSKB Y1, AX
	VPMOVMSKB Y0, BX
	BLSMSKL   BX, CX
	ANDL      CX, AX
	TZCNTL    BX, BX
	MOVQ      SI, R8
	TESTL     AX, AX
	JZ        rest

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
	MOVQ    (R11)(CX*8), CX
	MOVQ    CX, (DI)
	SHRQ    $56, CX
	ADDQ    CX, DI
	LEAQ    1(DX), SI
	VMOVDQU (SI), Y0
	VMOVDQU Y0, (DI)
	BLSRL   AX, AX
	JNZ     next

rest:
	// The plain bytes from SI to the end of the block, or to its first
	// byte of 0x80 or more, are in dst already. After such a byte, stop.
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
