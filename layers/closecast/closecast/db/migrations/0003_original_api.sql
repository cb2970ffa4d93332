-- 0003_original_api: what the replaced project's clients send and read.
--
-- train_type: the producer's provenance tag on every stream row (e.g. "prod", "demo_27"), stored, returned and
-- filterable. n_rows of a model inference becomes optional: the original's training service records a
-- day's predictions by their key alone.
ALTER TABLE stock_data ADD COLUMN train_type text;
ALTER TABLE stock_data ADD CONSTRAINT stock_data_train_type_check
    CHECK (train_type ~ '^[A-Za-z0-9_.-]{1,32}$');

CREATE INDEX stock_data_train_type_idx ON stock_data (train_type) WHERE train_type IS NOT NULL;

CREATE OR REPLACE VIEW stock_data_with_target AS
SELECT s.stock_id, s.date_id, s.seconds_in_bucket, s.imbalance_size, s.imbalance_buy_sell_flag,
       s.reference_price, s.matched_size, s.far_price, s.near_price, s.bid_price, s.bid_size,
       s.ask_price, s.ask_size, s.wap, COALESCE(r.target, s.target) AS target, s.time_id, s.row_id,
       s.ingested_at, s.updated_at, s.train_type
FROM stock_data AS s
LEFT JOIN revealed_target AS r
       ON r.date_id = s.date_id AND r.seconds_in_bucket = s.seconds_in_bucket AND r.stock_id = s.stock_id;

ALTER TABLE model_inference ALTER COLUMN n_rows DROP NOT NULL;
