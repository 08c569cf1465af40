-- A message row keeps its campaign without a foreign key, as it keeps its account and its contact (0006).
--
-- The key checked every row a release inserts with a lookup of the campaign row and a KEY SHARE lock on
-- it: 152 ms of every 50,000-row chunk (EXPLAIN ANALYZE, 3 us a row), taken by up to four release workers
-- on the one campaign row, which the chunk has already locked FOR SHARE. The dispatcher writes rows only
-- for the campaign it holds, in that campaign's transaction, so the key never refused one. Its ON DELETE
-- CASCADE removed nothing either: only a draft or scheduled campaign can be deleted, and such a campaign
-- has no message rows (they are written when it is sent). Its counters keep their key.
ALTER TABLE sms_delivery_logs DROP CONSTRAINT sms_delivery_logs_campaign_id_fkey;
