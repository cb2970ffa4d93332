-- 0002_revealed_target: revealed targets are kept on their own as well as copied onto stock_data.
--
-- Kinesis orders records per shard only, so a day's revealed targets may arrive before the rows they
-- belong to. Keeping them here lets a row that arrives later pick its target up on insert, so neither
-- order loses a target.
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
