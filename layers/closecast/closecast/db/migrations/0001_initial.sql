-- 0001_initial: the closecast schema.
--
-- Applied through the RDS Data API by closecast.db.migrations, one statement per call, all in one
-- transaction.  Statement rule: a statement ends at a line whose last non-blank character is ';'
-- (outside $$-quoted bodies; comment lines never end a statement).
--
-- Quarantined stream records are NOT a table: they go to S3 (quarantine/) with their reason.

-- One auction snapshot per (date_id, seconds_in_bucket, stock_id), Kaggle schema.
-- The CHECK constraints mirror closecast.market.schema.Snapshot; "< 'Infinity'" also rejects NaN,
-- which PostgreSQL orders above every number.
CREATE TABLE stock_data (
    stock_id                 integer          NOT NULL,
    date_id                  integer          NOT NULL,
    seconds_in_bucket        integer          NOT NULL,
    imbalance_size           double precision,
    imbalance_buy_sell_flag  smallint         NOT NULL,
    reference_price          double precision,
    matched_size             double precision,
    far_price                double precision,
    near_price               double precision,
    bid_price                double precision,
    bid_size                 double precision,
    ask_price                double precision,
    ask_size                 double precision,
    wap                      double precision,
    target                   double precision,
    time_id                  integer          NOT NULL,
    row_id                   text             NOT NULL,
    ingested_at              timestamptz      NOT NULL DEFAULT now(),
    updated_at               timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT stock_data_pkey PRIMARY KEY (date_id, seconds_in_bucket, stock_id),
    CONSTRAINT stock_data_row_id_key UNIQUE (row_id),
    CONSTRAINT stock_data_stock_id_check CHECK (stock_id >= 0),
    CONSTRAINT stock_data_date_id_check CHECK (date_id >= 0),
    CONSTRAINT stock_data_seconds_in_bucket_check
        CHECK (seconds_in_bucket BETWEEN 0 AND 540 AND seconds_in_bucket % 10 = 0),
    CONSTRAINT stock_data_imbalance_buy_sell_flag_check CHECK (imbalance_buy_sell_flag IN (-1, 0, 1)),
    CONSTRAINT stock_data_imbalance_size_check CHECK (imbalance_size >= 0 AND imbalance_size < 'Infinity'),
    CONSTRAINT stock_data_matched_size_check CHECK (matched_size >= 0 AND matched_size < 'Infinity'),
    CONSTRAINT stock_data_bid_size_check CHECK (bid_size >= 0 AND bid_size < 'Infinity'),
    CONSTRAINT stock_data_ask_size_check CHECK (ask_size >= 0 AND ask_size < 'Infinity'),
    CONSTRAINT stock_data_reference_price_check CHECK (reference_price > 0 AND reference_price < 'Infinity'),
    CONSTRAINT stock_data_far_price_check CHECK (far_price > 0 AND far_price < 'Infinity'),
    CONSTRAINT stock_data_near_price_check CHECK (near_price > 0 AND near_price < 'Infinity'),
    CONSTRAINT stock_data_bid_price_check CHECK (bid_price > 0 AND bid_price < 'Infinity'),
    CONSTRAINT stock_data_ask_price_check CHECK (ask_price > 0 AND ask_price < 'Infinity'),
    CONSTRAINT stock_data_wap_check CHECK (wap > 0 AND wap < 'Infinity'),
    CONSTRAINT stock_data_target_check CHECK (target > '-Infinity' AND target < 'Infinity')
);

CREATE INDEX stock_data_stock_id_date_id_idx ON stock_data (stock_id, date_id);

-- date_id -> trading date.
CREATE TABLE date_mapping (
    date_id       integer     PRIMARY KEY,
    trading_date  date        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT date_mapping_trading_date_key UNIQUE (trading_date),
    CONSTRAINT date_mapping_date_id_check CHECK (date_id >= 0)
);

-- Trained models; each fine-tuned model points at its parent.
CREATE TABLE model (
    id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                  text        NOT NULL,
    version               integer     NOT NULL,
    artifact_uri          text        NOT NULL,
    metadata_uri          text,
    parent_id             bigint      REFERENCES model (id),
    last_trained_date_id  integer,
    feature_set           text        NOT NULL,
    params                jsonb       NOT NULL DEFAULT '{}',
    metrics               jsonb       NOT NULL DEFAULT '{}',
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_name_version_key UNIQUE (name, version),
    CONSTRAINT model_version_check CHECK (version >= 1)
);

-- One prediction run of a model over one day.
CREATE TABLE model_inference (
    id               bigint           GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_id         bigint           NOT NULL REFERENCES model (id),
    date_id          integer          NOT NULL,
    predictions_uri  text             NOT NULL,
    n_rows           integer          NOT NULL,
    mae              double precision,
    created_at       timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT model_inference_model_id_date_id_key UNIQUE (model_id, date_id),
    CONSTRAINT model_inference_n_rows_check CHECK (n_rows >= 0)
);

-- Long-running work requested through POST /jobs/ (answered 202) and run from SQS.
CREATE TABLE job (
    id          uuid        PRIMARY KEY,
    kind        text        NOT NULL,
    status      text        NOT NULL,
    request     jsonb       NOT NULL,
    result      jsonb,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_kind_check CHECK (kind IN ('train', 'inference', 'backtest')),
    CONSTRAINT job_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed'))
);

CREATE INDEX job_status_created_at_idx ON job (status, created_at);
