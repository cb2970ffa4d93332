-- 0007_live_loop: streaming predictions, one champion per model name with its promotions, and the daily chain.

-- The daily chain is a job ('daily') whose steps are jobs too; 'promote' is the evaluate-and-promote step.
ALTER TABLE job DROP CONSTRAINT job_kind_check;
ALTER TABLE job ADD CONSTRAINT job_kind_check
    CHECK (kind IN ('train', 'inference', 'store_day', 'daily', 'promote'));

-- Every promotion decision, by the rule (the daily chain) or by hand (PUT /models/{id}/champion), with its
-- evidence. `decision` 'kept' records a candidate the rule did not promote (the champion stayed).
CREATE TABLE promotion (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name               text        NOT NULL,
    model_id           bigint      NOT NULL REFERENCES model (id),
    previous_model_id  bigint      REFERENCES model (id),
    decision           text        NOT NULL,
    decided_by         text        NOT NULL,
    date_id            integer,
    evidence           jsonb       NOT NULL DEFAULT '{}',
    job_id             uuid        REFERENCES job (id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT promotion_decision_check CHECK (decision IN ('promoted', 'kept')),
    CONSTRAINT promotion_decided_by_check CHECK (decided_by IN ('rule', 'manual'))
);
CREATE INDEX promotion_name_id_idx ON promotion (name, id);

-- The champion of each model name: what the streaming predictor and the daily chain use.
CREATE TABLE champion (
    name          text        PRIMARY KEY,
    model_id      bigint      NOT NULL REFERENCES model (id),
    promotion_id  bigint      REFERENCES promotion (id),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One live prediction per row and model (a replayed snapshot updates it, never duplicates it). `partial`:
-- when it was made, some earlier snapshot of the day had no row for this stock (late or missing);
-- `missing_before` counts those snapshots.
CREATE TABLE prediction (
    date_id            integer          NOT NULL,
    seconds_in_bucket  integer          NOT NULL,
    stock_id           integer          NOT NULL,
    model_id           bigint           NOT NULL REFERENCES model (id),
    row_id             text             NOT NULL,
    value              double precision NOT NULL,
    partial            boolean          NOT NULL DEFAULT false,
    missing_before     integer          NOT NULL DEFAULT 0,
    created_at         timestamptz      NOT NULL DEFAULT now(),
    updated_at         timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT prediction_pkey PRIMARY KEY (date_id, seconds_in_bucket, stock_id, model_id),
    CONSTRAINT prediction_value_check CHECK (value > '-Infinity' AND value < 'Infinity'),
    CONSTRAINT prediction_missing_before_check CHECK (missing_before >= 0)
);
CREATE INDEX prediction_model_id_date_id_idx ON prediction (model_id, date_id);

-- One chain per day: the unique date_id makes targets that arrive twice (or the schedule and the ingest at
-- once) start one chain. A chain whose job failed may be started again (attempts counts them).
CREATE TABLE daily_chain (
    date_id     integer     PRIMARY KEY,
    trigger     text        NOT NULL,
    job_id      uuid        NOT NULL,
    attempts    integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT daily_chain_trigger_check CHECK (trigger IN ('targets', 'schedule', 'manual')),
    CONSTRAINT daily_chain_date_id_check CHECK (date_id >= 0)
);
