-- 0002_revealed_target: revealed targets, and the view that reads rows with their targets.
--
-- Kaggle reveals a day's targets after the day; on the stream they are records of their own. Kinesis orders
-- records per shard only, and two shards are written by two concurrent invocations, so a target may arrive
-- before its row, or be written in the same instant. Targets are therefore stored on their own and joined on
-- read: neither order nor timing can lose one. A target sent inside a row (train.csv, generated data) stays
-- in stock_data.target; a revealed target wins over it.
CREATE TABLE revealed_target (
    date_id            integer          NOT NULL,
    seconds_in_bucket  integer          NOT NULL,
    stock_id           integer          NOT NULL,
    target             double precision NOT NULL,
    revealed_at        timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT revealed_target_pkey PRIMARY KEY (date_id, seconds_in_bucket, stock_id),
    CONSTRAINT revealed_target_seconds_in_bucket_check
        CHECK (seconds_in_bucket BETWEEN 0 AND 540 AND seconds_in_bucket % 10 = 0),
    CONSTRAINT revealed_target_target_check CHECK (target > '-Infinity' AND target < 'Infinity')
);

CREATE VIEW stock_data_with_target AS
SELECT s.stock_id, s.date_id, s.seconds_in_bucket, s.imbalance_size, s.imbalance_buy_sell_flag,
       s.reference_price, s.matched_size, s.far_price, s.near_price, s.bid_price, s.bid_size,
       s.ask_price, s.ask_size, s.wap, COALESCE(r.target, s.target) AS target, s.time_id, s.row_id,
       s.ingested_at, s.updated_at
FROM stock_data AS s
LEFT JOIN revealed_target AS r
       ON r.date_id = s.date_id AND r.seconds_in_bucket = s.seconds_in_bucket AND r.stock_id = s.stock_id;
