-- 0006_jobs_registry_day_store: jobs with client tokens and timings, the model registry's lineage columns,
-- inference scores beside predicting zero, and the day store's versions.

-- Jobs: POST /jobs/ (and the original's /train-model/, /inference-model/) create one row and one message on
-- the kind's queue; the train/inference function claims it (queued -> running) and ends it (succeeded|failed).
-- A client_token makes a retried POST return the job it already created.
ALTER TABLE job RENAME COLUMN request TO params;
ALTER TABLE job ADD COLUMN client_token text;
ALTER TABLE job ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE job ADD COLUMN started_at timestamptz;
ALTER TABLE job ADD COLUMN finished_at timestamptz;
ALTER TABLE job ADD CONSTRAINT job_client_token_key UNIQUE (client_token);
ALTER TABLE job ADD CONSTRAINT job_client_token_check CHECK (char_length(client_token) BETWEEN 1 AND 128);
ALTER TABLE job DROP CONSTRAINT job_kind_check;
ALTER TABLE job ADD CONSTRAINT job_kind_check CHECK (kind IN ('train', 'inference', 'store_day'));
CREATE INDEX job_kind_created_at_idx ON job (kind, created_at);

-- The registry: which job made a model, on which days (and which stored version of each day), and how.
ALTER TABLE model ADD COLUMN job_id uuid REFERENCES job (id);
ALTER TABLE model ADD COLUMN days_trained jsonb NOT NULL DEFAULT '[]';
ALTER TABLE model ADD COLUMN day_versions jsonb NOT NULL DEFAULT '{}';
ALTER TABLE model ADD COLUMN training jsonb NOT NULL DEFAULT '{}';
CREATE INDEX model_parent_id_idx ON model (parent_id);

-- Inference: the MAE of predicting zero on the same rows, how many rows had a target, centring, the job.
ALTER TABLE model_inference ADD COLUMN zero_mae double precision;
ALTER TABLE model_inference ADD COLUMN n_targets integer;
ALTER TABLE model_inference ADD COLUMN centered boolean NOT NULL DEFAULT false;
ALTER TABLE model_inference ADD COLUMN job_id uuid REFERENCES job (id);
ALTER TABLE model_inference ADD CONSTRAINT model_inference_zero_mae_check CHECK (zero_mae >= 0);

-- The day store: one Parquet object per trading day in S3 (days/date_id=NNNN.parquet), what training reads.
-- `version` counts rewrites of the day; `source` is the database's signature of the day when it was written
-- (rows, targets, last change), so a day whose rows or targets changed since is found stale and rewritten.
CREATE TABLE day_store (
    date_id        integer     PRIMARY KEY,
    key            text        NOT NULL,
    version        integer     NOT NULL,
    sha256         text        NOT NULL,
    s3_version_id  text,
    n_rows         integer     NOT NULL,
    n_targets      integer     NOT NULL,
    source         text        NOT NULL,
    written_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT day_store_date_id_check CHECK (date_id >= 0),
    CONSTRAINT day_store_version_check CHECK (version >= 1),
    CONSTRAINT day_store_n_rows_check CHECK (n_rows >= 0),
    CONSTRAINT day_store_n_targets_check CHECK (n_targets >= 0 AND n_targets <= n_rows)
);
