"""The demo behind `make demo`: a synthetic market of about 30 days through the whole application.

1. `closecast generate`: 30 days (seed 7) into the state directory;
2. the history (all but the last days) by `closecast backfill` into the database and the day store;
3. the last days on the Kinesis stream, snapshot by snapshot, through the ingest function (plus two bad
   records, which land in the S3 quarantine);
4. a refit through `POST /jobs/` on the backfilled days, waited for through `GET /jobs/{id}`, named champion
   (`PUT /models/{id}/champion`);
5. the live loop: 3 more days replayed with their revealed targets after each close; the streaming predictor
   predicts every snapshot with the champion, each day's targets start the daily chain (store the day, daily
   update, promote or keep), and an inference job checks the live MAE against the batch one;
6. the ML package's walk-forward backtest on the same generated directory, as a table;
7. the URLs to look at, then the cloud keeps serving.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from closecast_tools.local import loop
from closecast_tools.local.cloud import LocalCloud, auth_headers, client
from closecast_tools.local.http import authorize, call

DAYS = 30
STREAMED_DAYS = 1  # streamed before any model exists: stored, not predicted
LIVE_DAYS = 3  # streamed with their targets once the champion is named: the live loop
MODEL = "closecast"  # the template's ChampionModelName
STOCKS = 50
SEED = 7


class DemoError(RuntimeError):
    pass


def wait_job(api: str, job_id: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status, job = call("GET", f"{api}/jobs/{job_id}")
        if status != 200:
            raise DemoError(f"GET /jobs/{job_id} answered {status}: {job}")
        if job["status"] in ("succeeded", "failed"):
            return dict(job)
        if time.monotonic() > deadline:
            raise DemoError(f"job {job_id} still {job['status']} after {timeout_s:.0f} s")
        time.sleep(0.3)


def run_job(api: str, body: dict[str, Any], out: IO[str]) -> dict[str, Any]:
    status, job = call("POST", f"{api}/jobs/", body)
    if status != 202:
        raise DemoError(f"POST /jobs/ {body} answered {status}: {job}")
    print(f"POST /jobs/ {json.dumps(body)} -> 202 job {job['id']} ({job['status']})", file=out, flush=True)
    done = wait_job(api, job["id"])
    if done["status"] != "succeeded":
        raise DemoError(f"job {done['id']} failed: {done['error']}")
    return done


def _wait_rows(api: str, date_id: int, expected: int, timeout_s: float = 180) -> int:
    deadline = time.monotonic() + timeout_s
    total = 0
    while time.monotonic() < deadline:
        status, page = call("GET", f"{api}/stock_data/?date_id={date_id}&page_size=1")
        total = int(page["total_results"]) if status == 200 else 0
        if total >= expected:
            break
        time.sleep(0.3)
    return total


def run_demo(cloud: LocalCloud, out: IO[str], days: int = DAYS, stocks: int = STOCKS) -> dict[str, Any]:
    from closecast_ml.backtest import format_table, run_backtest
    from closecast_ml.dataset import read_dataset, split_days
    from closecast_tools.backfill import backfill, local_target
    from closecast_tools.market.generate import write_dataset
    from closecast_tools.market.replay import ReplayOptions, replay

    started = time.perf_counter()
    state = cloud.state
    authorize(lambda: auth_headers(state))  # the demo user's token, when the cloud runs with sign-in
    api = state["api_url"]
    market = cloud.options.state_dir / "demo-market"
    summary = write_dataset(market, days=days, seed=SEED, n_stocks=stocks)
    print(
        f"1. generated {summary.rows} rows ({days} days x {stocks} stocks, seed {SEED}) in {market}", file=out
    )

    last_history = days - STREAMED_DAYS - LIVE_DAYS - 1
    report = backfill(
        market,
        local_target(cloud.options.state_dir / "local.json"),
        date_range=(0, last_history),
        progress=True,
    )
    print(f"2. {report.text()}", file=out, flush=True)

    streamed = [
        d
        for d in split_days(read_dataset(market, with_oracle=False))
        if last_history < int(d["date_id"].iloc[0]) <= last_history + STREAMED_DAYS
    ]
    kinesis = client("kinesis", state["aws_endpoint_url"])
    sent = replay(streamed, kinesis, state["stream_name"], ReplayOptions(shape="envelope", progress=False))
    kinesis.put_record(StreamName=state["stream_name"], Data=b"not json at all", PartitionKey="bad")
    bad = {"stock_id": 1, "date_id": last_history + 1, "seconds_in_bucket": 15, "imbalance_buy_sell_flag": 2}
    kinesis.put_record(StreamName=state["stream_name"], Data=json.dumps(bad).encode(), PartitionKey="bad")
    arrived = {
        int(d["date_id"].iloc[0]): _wait_rows(api, int(d["date_id"].iloc[0]), len(d)) for d in streamed
    }
    print(f"3. streamed the last {len(streamed)} days onto Kinesis: {sent.text()}", file=out)
    print(f"   rows back through GET /stock_data/: {arrived}", file=out)
    quarantined = _quarantined(cloud, expected=2)
    print(f"   quarantined bad records: {len(quarantined)} (s3://{state['bucket']}/quarantine/...)", file=out)
    for reason in quarantined:
        print(f"     {reason}", file=out)

    print("4. refit on the backfilled days, named champion of the live loop:", file=out, flush=True)
    job = run_job(api, {"kind": "train", "model_name": MODEL, "up_to_date_id": last_history}, out)
    model = job["result"]
    print(
        f"   model {model['model_id']} ({model['name']} v{model['version']}): {model['days_trained']} days, "
        f"{model['rows']} rows, validation MAE {model['valid_metrics']['mae']:.3f} vs zero "
        f"{model['valid_metrics']['zero_mae']:.3f}, {job['result']['seconds']:.1f} s",
        file=out,
    )
    status, promotion = call(
        "PUT", f"{api}/models/{model['model_id']}/champion", {"reason": "demo base model"}
    )
    if status != 200:
        raise DemoError(f"PUT /models/{model['model_id']}/champion answered {status}: {promotion}")
    print(f"   PUT /models/{model['model_id']}/champion -> promotion {promotion['id']}", file=out)

    print(
        f"5. the live loop: {LIVE_DAYS} more days replayed with their targets after each close; every snapshot is"
        " predicted live, each day's targets start its chain (store day -> daily update -> promote or keep)",
        file=out,
        flush=True,
    )
    print(
        f"   {'date_id':>7} {'rows':>6} {'live':>6} {'model':>5} {'live MAE':>9} {'zero MAE':>9}  chain",
        file=out,
    )
    live_days = [
        d
        for d in split_days(read_dataset(market, with_oracle=False))
        if int(d["date_id"].iloc[0]) > last_history + STREAMED_DAYS
    ]
    data_api = loop.data_api_of(state)
    rows = []

    def show(outcome: loop.DayOutcome) -> None:
        day = next(d for d in live_days if int(d["date_id"].iloc[0]) == outcome.date_id)
        (figures, *_) = loop.compare_day(state, data_api, day)
        steps = (outcome.chain.get("result") or {}).get("steps") or {}
        promote = steps.get("promote") or {}
        evidence = promote.get("evidence") or {}
        if outcome.chain["status"] != "succeeded":
            then = f"FAILED: {outcome.chain['error']}"
        elif promote.get("decision") == "promoted":
            then = (
                f"promoted model {promote['champion_id']} (guard MAE {evidence.get('guard_candidate_mae')} <= "
                f"{evidence.get('guard_champion_mae')})"
            )
        else:
            then = f"kept model {promote.get('champion_id')}"
        rows.append({**figures, "chain": outcome.chain["status"], "decision": promote.get("decision")})
        print(
            f"   {outcome.date_id:>7} {outcome.rows:>6} {outcome.predictions:>6} {figures['model_id']:>5} "
            f"{figures['live_mae']:>9.3f} {figures['zero_mae']:>9.3f}  {outcome.chain_seconds:5.1f} s, {then}",
            file=out,
            flush=True,
        )

    outcomes = loop.stream_days(state, live_days, on_day=show)
    last = rows[-1]
    inference = run_job(
        api, {"kind": "inference", "model_id": last["model_id"], "date_id": last["date_id"]}, out
    )
    print(
        f"   batch check: the inference job of model {last['model_id']} on day {last['date_id']} reports MAE "
        f"{inference['result']['mae']:.6f}; live MAE {last['live_mae']:.6f}; largest |live - batch| over all rows "
        f"{max(r['max_abs_difference'] for r in rows):.1e}",
        file=out,
    )

    print("6. walk-forward backtest on the same market (closecast backtest):", file=out, flush=True)
    train_days = days - 3
    result = run_backtest(market, train_days=train_days, models=("daily", "frozen", "seed"))
    print(f"   trained on {train_days} days, walked {len(result['days'])}:", file=out)
    for line in format_table(result).splitlines():
        print(f"   {line}", file=out)

    print("7. look around:", file=out)
    print(f"   dashboard: {state['dashboard_url']}", file=out)
    for path in (
        "/jobs/",
        "/models/",
        "/champions/",
        "/promotions/",
        f"/predictions/?date_id={days - 1}&page_size=5",
        "/model-inferences/",
        f"/stock_data/?date_id={days - 1}&page_size=5",
    ):
        print(f"   {api}{path}", file=out)
    print(
        f"   s3://{state['bucket']}/ at {state['aws_endpoint_url']} (days/, models/, predictions/, quarantine/)",
        file=out,
    )
    seconds = time.perf_counter() - started
    ok = (
        all(arrived[d] == len(s) for d, s in zip(sorted(arrived), streamed, strict=True))
        and len(quarantined) == 2
        and all(o.predictions == o.rows and o.chain["status"] == "succeeded" for o in outcomes)
    )
    print(f"demo {'ok' if ok else 'FAILED'} in {seconds:.0f} s", file=out, flush=True)
    return {"ok": ok, "seconds": seconds, "live_days": rows}


def _quarantined(cloud: LocalCloud, expected: int, timeout_s: float = 60) -> list[str]:
    state = cloud.state
    s3 = client("s3", state["aws_endpoint_url"])
    deadline = time.monotonic() + timeout_s
    keys: list[str] = []
    while len(keys) < expected and time.monotonic() < deadline:
        keys = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=state["bucket"], Prefix="quarantine/").get("Contents", [])
        ]
        if len(keys) < expected:
            time.sleep(0.2)
    reasons = []
    for key in keys:
        document = json.loads(s3.get_object(Bucket=state["bucket"], Key=key)["Body"].read())
        reasons.append(f"{Path(key).name}: {document['reason']}")
    return reasons
