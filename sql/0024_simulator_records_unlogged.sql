-- The simulator stands in for a provider and its handsets. Its two records (0009) are the evidence tests
-- and benchmarks read, not platform data, yet every message sent through it wrote two rows, five index
-- entries and their WAL into the platform's database: about a seventh of the database's time per message
-- in the send benchmark, work a real provider does on its own machines.
--
-- Both are now unlogged (no WAL; Aurora keeps unlogged tables crash-safe, PostgreSQL empties them after a
-- crash, never after a clean restart), and lose their message_id indexes: nothing but tests looks a call
-- up by our id, and they read a few rows. The provider's id stays unique (an idempotent simulator's repeat
-- is told apart by it).
DROP INDEX simulator_calls_message_idx;
DROP INDEX simulator_messages_message_idx;
ALTER TABLE simulator_calls SET UNLOGGED;
ALTER TABLE simulator_messages SET UNLOGGED;
