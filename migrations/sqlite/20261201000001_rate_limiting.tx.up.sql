-- Rate limiting keeps no table on SQLite: the embedded database serves one
-- process, whose budgets live in memory (infra/ratelimit.MemoryStore). This
-- step exists so both dialects share one schema history.
SELECT 1;
