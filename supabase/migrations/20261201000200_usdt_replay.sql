-- The local replay moved to real USDT markets (issue 10, items 1 and 2).
--
-- The paper exchange replayed twenty days of January 2018 on eight BTC-quoted pairs; it now replays the
-- 2024 USDT markets of data/market-data-usdt. Two things the old replay left in a database would be read
-- wrongly on the new one, so they go:
-- - its scan runs. Their newest bars are from January 2018, and diagnostics judges scan freshness in
--   market time: on a replay living in 2024 they would read as a scanner stale for six years, and the
--   rebuild would refuse a healthy stack. No scan of a real exchange can be that old (this system did
--   not exist then), so only the old replay's runs match;
-- - the eight BTC-quoted markets, which the seed listed with quote 'USDT' although their prices are in
--   BTC. The seed now lists the USDT perpetuals the stack replays.
-- Signals and orders of the old replay stay, as history: they are expired or final, or they are
-- untracked when their user connects a new paper account (the demo does).

delete from public.scan_runs where bar_time < timestamptz '2019-01-01 00:00:00+00';

delete from public.markets
where symbol in ('ADABTC', 'ETCBTC', 'ETHBTC', 'LTCBTC', 'NXTBTC', 'TRXBTC', 'XLMBTC', 'ZECBTC');
