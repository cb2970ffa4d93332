"""`closecast up`: the whole SAM application on one machine, no Docker, no AWS account.

PostgreSQL (embedded, or a server by URL) behind a local RDS Data API endpoint; moto in server mode for S3,
Kinesis, SQS, Secrets Manager and Cognito with the template's resources created (and a demo user in every
group); the functions as warm local processes with the environment the template gives them (references
resolved to the local resources); an HTTP gateway with the template's routes and JWT authorizers; pollers for
the template's event source mappings.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from closecast_tools.local.authorizer import JwksCache, JwtAuthorizer
from closecast_tools.local.data_api import LocalDataApi
from closecast_tools.local.gateway import LocalGateway
from closecast_tools.local.poller import (
    KinesisMapping,
    KinesisShardPoller,
    MappingStats,
    SqsMapping,
    SqsPoller,
    base64_blobs_session,
)
from closecast_tools.local.postgres import EmbeddedPostgres, PostgresServer, open_postgres, start_embedded
from closecast_tools.local.runtime import FunctionConfig, FunctionRuntime, InvokeResult, die_with_parent
from closecast_tools.local.schedule import ScheduleRunner, parse_schedule
from closecast_tools.local.template import Template, TemplateError, resolve

log = logging.getLogger("closecast.local")

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
STATE_FILE = "local.json"
DEMO_USER = "demo@example.com"


def repo_root() -> Path:
    """The project checkout (where template.yaml is): the working directory or one of its parents."""
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "template.yaml").is_file():
            return candidate
    return Path(__file__).resolve().parents[3]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def client(
    service: str, endpoint_url: str, config: Config | None = None, session: boto3.Session | None = None
) -> Any:
    """A boto3 client of the local cloud (its region and credentials); `config` replaces the default retries,
    `session` the default session."""
    return (session or boto3).client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        config=config or Config(retries={"mode": "standard", "max_attempts": 3}),
        **CREDENTIALS,
    )


@dataclass
class LocalResources:
    """What each logical id of the template became locally: `Ref` value and attributes."""

    refs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lookup(self, logical_id: str, attr: str | None) -> Any:
        if attr is None:
            if logical_id not in self.refs:
                raise TemplateError(f"!Ref {logical_id}: not a resource the local cloud knows")
            return self.refs[logical_id]
        try:
            return self.attrs[logical_id][attr]
        except KeyError:
            raise TemplateError(f"!GetAtt {logical_id}.{attr}: not known locally") from None


def template_parameters(template: Template, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The template's parameter defaults, with `overrides` (unknown names refused), and pseudo parameters."""
    unknown = sorted(set(overrides or {}) - set(template.parameters))
    if unknown:
        raise TemplateError(f"unknown template parameter(s): {', '.join(unknown)}")
    return {
        **template.parameter_defaults(),
        **(overrides or {}),
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "closecast-local",
        "AWS::NoValue": None,
    }


def function_environment(
    template: Template,
    parameters: dict[str, Any],
    resources: LocalResources,
    logical_id: str,
    *,
    aws_endpoint_url: str,
    data_api_url: str,
    auth: bool = True,
) -> dict[str, str]:
    """The environment template.yaml gives the function, references resolved to the local resources, plus
    what Lambda itself sets and the local endpoints (boto3 reads AWS_ENDPOINT_URL[_<SERVICE>]). Without
    `auth` (`closecast up --no-auth`) the API functions are told that no authorizer guards them."""
    spec = template.functions[logical_id]
    env = {
        k: "" if v is None else str(v)
        for k, v in resolve(spec.environment, resources.lookup, parameters).items()
    }
    env.update(
        {
            "AWS_ENDPOINT_URL": aws_endpoint_url,
            "AWS_ENDPOINT_URL_RDS_DATA": data_api_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        }
    )
    if not auth:
        env["API_AUTHORIZATION"] = "none"
    return env


def function_config(
    template: Template, root: Path, logical_id: str, environment: dict[str, str]
) -> FunctionConfig:
    spec = template.functions[logical_id]
    return FunctionConfig(
        name=logical_id,
        code_dir=(root / spec.code_dir).resolve(),
        handler=spec.handler,
        timeout_s=spec.timeout,
        memory_mb=spec.memory,
        environment=environment,
    )


@dataclass
class CloudOptions:
    root: Path
    state_dir: Path
    database_url: str | None = None
    host: str = "127.0.0.1"
    api_port: int = 0
    max_instances: int = 2
    pollers: bool = True
    auth: bool = True  # False: `--no-auth`, routes served without tokens
    # False: the template's schedules are read, checked and reported but never fire (the test sessions and the
    # benchmarks: a sweep at 21:30 UTC would start chains they did not ask for)
    schedules: bool = True
    parameter_overrides: dict[str, str] = field(
        default_factory=dict
    )  # like `sam deploy --parameter-overrides`


class LocalCloud:
    def __init__(self, options: CloudOptions) -> None:
        self.options = options
        self.template = Template(options.root / "template.yaml")
        self.parameters = template_parameters(self.template, options.parameter_overrides)
        self.resources = LocalResources()
        self.postgres: PostgresServer | None = None
        self.data_api: LocalDataApi | None = None
        self.moto: Any = None
        self.runtime: FunctionRuntime | None = None
        self.gateway: LocalGateway | None = None
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.mapping_stats: dict[str, MappingStats] = {}
        self.schedules: list[ScheduleRunner] = []
        self.state: dict[str, Any] = {}
        self.demo_user: dict[str, Any] = {}
        self.started_in_s = 0.0

    # ------------------------------------------------------------------ start
    def start(self) -> LocalCloud:
        started = time.perf_counter()
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_aws()
            self._start_database()
            self._create_resources()
            self._start_functions()
            self._migrate()
            self._start_gateway()
            if self.options.pollers:
                self._start_pollers()
            self._start_schedules()
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.perf_counter() - started
        self._write_state()
        return self

    def _start_aws(self) -> None:
        """moto in server mode, in its own process: its state belongs to this cloud alone (moto keeps its
        backends in process-wide globals, so an in-process server would share them with anything else). Bucket
        objects are written through to `.closecast/s3` before each request is answered, and loaded again when
        the bucket is created, so they survive a crash of the whole cloud."""
        port = free_port(self.options.host)
        log_dir = self.options.state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "moto.log", "ab") as log_file:
            self.moto = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "closecast_tools.local.moto_server",
                    "-H",
                    self.options.host,
                    "-p",
                    str(port),
                    "--s3-dir",
                    str(self._bucket_dir()),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                start_new_session=True,  # Ctrl-C at the terminal reaches the cloud, which stops moto last
            )
        self.aws_endpoint_url = f"http://{self.options.host}:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.aws_endpoint_url}/moto-api/data.json", timeout=2):  # noqa: S310
                    return
            except OSError:
                if self.moto.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start; see {log_dir / 'moto.log'}") from None
                time.sleep(0.05)

    def _start_database(self) -> None:
        database = str(self.parameters["DatabaseName"])
        self.postgres = open_postgres(
            database_url=self.options.database_url, data_dir=self.options.state_dir / "pg"
        )
        dsn = self.postgres.ensure_database(database)
        sm = client("secretsmanager", self.aws_endpoint_url)
        secret = sm.create_secret(
            Name="closecast-local/db-master",
            SecretString=json.dumps({"username": "closecast", "password": secrets.token_urlsafe(24)}),
        )
        self.cluster_arn = f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:closecast-local"
        self.secret_arn = str(secret["ARN"])
        self.database = database
        self.data_api = LocalDataApi(
            dsn,
            cluster_arn=self.cluster_arn,
            secret_arn=self.secret_arn,
            database=database,
            host=self.options.host,
            port=0,
            credentials=self._database_user,
        )
        self.data_api.start()

    def _database_user(self, secret_arn: str) -> tuple[str, str] | None:
        """What the Data API does with a secret: read its username and password from Secrets Manager."""
        try:
            value = client("secretsmanager", self.aws_endpoint_url).get_secret_value(SecretId=secret_arn)
            secret = json.loads(value["SecretString"])
            return str(secret["username"]), str(secret["password"])
        except Exception as exc:
            log.warning("secret %s is not a database user: %s", secret_arn, exc)
            return None

    def _create_secrets(self) -> None:
        """The template's secrets, with GenerateSecretString done as Secrets Manager does it."""
        sm = client("secretsmanager", self.aws_endpoint_url)
        for logical_id in self.template.of_type("AWS::SecretsManager::Secret"):
            props = self._props(logical_id)
            if "SecretString" in props:
                value = str(props["SecretString"])
            else:
                spec = props.get("GenerateSecretString", {})
                length = int(spec.get("PasswordLength", 32))
                alphabet = string.ascii_letters + string.digits
                password = "".join(secrets.choice(alphabet) for _ in range(length))
                document = json.loads(spec.get("SecretStringTemplate", "{}"))
                document[spec.get("GenerateStringKey", "password")] = password
                value = json.dumps(document)
            arn = sm.create_secret(Name=f"closecast-local/{logical_id}", SecretString=value)["ARN"]
            self.resources.refs[logical_id] = arn
            self.resources.attrs[logical_id] = {"Id": arn}

    def _create_user_pools(self) -> None:
        """The template's Cognito user pools, app clients and groups; a demo user in every group."""
        idp = client("cognito-idp", self.aws_endpoint_url)
        res = self.resources
        for logical_id in self.template.of_type("AWS::Cognito::UserPool"):
            props = self._props(logical_id)
            keep = ("Policies", "UsernameAttributes", "AutoVerifiedAttributes", "AdminCreateUserConfig")
            pool = idp.create_user_pool(
                PoolName=str(props.get("UserPoolName", logical_id)),
                **{k: props[k] for k in keep if k in props},
            )["UserPool"]
            res.refs[logical_id] = pool["Id"]
            res.attrs[logical_id] = {
                "Arn": pool["Arn"],
                "ProviderName": f"cognito-idp.{REGION}.amazonaws.com/{pool['Id']}",
                "ProviderURL": f"https://cognito-idp.{REGION}.amazonaws.com/{pool['Id']}",
                "UserPoolId": pool["Id"],
            }
        for logical_id in self.template.of_type("AWS::Cognito::UserPoolClient"):
            props = self._props(logical_id)
            client_keys = ("ExplicitAuthFlows", "GenerateSecret", "PreventUserExistenceErrors")
            created = idp.create_user_pool_client(
                UserPoolId=props["UserPoolId"],
                ClientName=str(props.get("ClientName", logical_id)),
                **{k: props[k] for k in client_keys if k in props},
            )["UserPoolClient"]
            res.refs[logical_id] = created["ClientId"]
            res.attrs[logical_id] = {"ClientId": created["ClientId"]}
        groups: dict[str, list[str]] = {}
        for logical_id in self.template.of_type("AWS::Cognito::UserPoolGroup"):
            props = self._props(logical_id)
            idp.create_group(UserPoolId=props["UserPoolId"], GroupName=props["GroupName"])
            res.refs[logical_id] = props["GroupName"]
            groups.setdefault(str(props["UserPoolId"]), []).append(str(props["GroupName"]))
        self.demo_user = {}
        pools = self.template.of_type("AWS::Cognito::UserPool")
        clients = self.template.of_type("AWS::Cognito::UserPoolClient")
        if pools and clients:
            pool_id, client_id = res.refs[pools[0]], res.refs[clients[0]]
            password = f"Cc1!{secrets.token_urlsafe(18)}"  # meets any policy: length, cases, digit, symbol
            idp.admin_create_user(
                UserPoolId=pool_id,
                Username=DEMO_USER,
                UserAttributes=[
                    {"Name": "email", "Value": DEMO_USER},
                    {"Name": "email_verified", "Value": "true"},
                ],
                MessageAction="SUPPRESS",
            )
            idp.admin_set_user_password(
                UserPoolId=pool_id, Username=DEMO_USER, Password=password, Permanent=True
            )
            for group in groups.get(pool_id, []):
                idp.admin_add_user_to_group(UserPoolId=pool_id, Username=DEMO_USER, GroupName=group)
            self.demo_user = {
                "user_pool_id": pool_id,
                "client_id": client_id,
                "username": DEMO_USER,
                "password": password,
                "groups": sorted(groups.get(pool_id, [])),
            }

    def _create_resources(self) -> None:
        s3 = client("s3", self.aws_endpoint_url)
        kinesis = client("kinesis", self.aws_endpoint_url)
        sqs = client("sqs", self.aws_endpoint_url)
        res = self.resources
        for logical_id in self.template.of_type("AWS::RDS::DBCluster"):
            res.refs[logical_id] = "closecast-local"
            res.attrs[logical_id] = {
                "DBClusterArn": self.cluster_arn,
                "MasterUserSecret.SecretArn": self.secret_arn,
                "Endpoint.Address": "127.0.0.1",
            }
        for logical_id in self.template.of_type("AWS::RDS::DBInstance"):
            res.refs[logical_id] = "closecast-local-instance"
        for logical_id in self.template.of_type("AWS::S3::Bucket"):
            name = f"closecast-{logical_id.lower()}"
            s3.create_bucket(Bucket=name)
            versioning = (
                self.template.resources[logical_id].get("Properties", {}).get("VersioningConfiguration")
            )
            if (versioning or {}).get("Status") == "Enabled":  # object versions, as the template asks
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            res.refs[logical_id] = name
            res.attrs[logical_id] = {"Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        for logical_id in self.template.of_type("AWS::Kinesis::Stream"):
            name = f"closecast-{logical_id.lower()}"
            props = self._props(logical_id)
            kinesis.create_stream(StreamName=name, ShardCount=int(props.get("ShardCount", 1)))
            kinesis.get_waiter("stream_exists").wait(
                StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
            )
            arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]
            res.refs[logical_id] = name
            res.attrs[logical_id] = {"Arn": arn}
        # queues without a redrive policy first: dead-letter queues must exist before their sources
        queues = sorted(
            self.template.of_type("AWS::SQS::Queue"),
            key=lambda q: "RedrivePolicy" in self.template.resources[q].get("Properties", {}),
        )
        for logical_id in queues:
            name = f"closecast-{logical_id.lower()}"
            props = self._props(logical_id)
            attributes = {"VisibilityTimeout": str(props.get("VisibilityTimeout", 30))}
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            res.refs[logical_id] = url
            res.attrs[logical_id] = {
                "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "QueueName": name,
                "QueueUrl": url,
            }
        self._create_secrets()
        self._create_user_pools()
        for logical_id, resource in self.template.resources.items():
            if logical_id in res.refs:
                continue
            kind = resource.get("Type", "")
            if kind == "AWS::Serverless::Function":
                res.refs[logical_id] = f"closecast-local-{logical_id}"
                res.attrs[logical_id] = {
                    "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:closecast-local-{logical_id}"
                }
            elif kind == "AWS::IAM::ManagedPolicy":
                res.refs[logical_id] = f"arn:aws:iam::{ACCOUNT}:policy/closecast-local-{logical_id}"
            else:
                res.refs[logical_id] = f"closecast-local-{logical_id}"

    def _props(self, logical_id: str) -> dict[str, Any]:
        props = self.template.resources[logical_id].get("Properties", {})
        resolved: dict[str, Any] = resolve(props, self.resources.lookup, self.parameters)
        return resolved

    def function_environment(self, logical_id: str) -> dict[str, str]:
        assert self.data_api is not None
        return function_environment(
            self.template,
            self.parameters,
            self.resources,
            logical_id,
            aws_endpoint_url=self.aws_endpoint_url,
            data_api_url=self.data_api.url,
            auth=self.options.auth,
        )

    def _start_functions(self) -> None:
        configs = {name: self.function_config(name) for name in self.template.functions}
        self.runtime = FunctionRuntime(configs, self.options.state_dir / "logs", self.options.max_instances)

    def function_config(self, logical_id: str) -> FunctionConfig:
        return function_config(
            self.template, self.options.root, logical_id, self.function_environment(logical_id)
        )

    def invoke(self, function: str, event: Any) -> InvokeResult:
        assert self.runtime is not None
        return self.runtime.invoke(function, event)

    def _migrate(self) -> None:
        for logical_id, spec in self.template.functions.items():
            if spec.code_dir.rstrip("/").endswith("migrate"):
                result = self.invoke(logical_id, {"action": "migrate"})
                if not result.ok:
                    raise RuntimeError(f"migrations failed: {result.error_type}: {result.error_message}")
                log.info("migrations: %s", result.payload)

    def _authorizers(self) -> dict[str, JwtAuthorizer]:
        """The template's JWT authorizers with their issuer's keys read from moto (for a Cognito issuer
        `https://cognito-idp.<region>.amazonaws.com/<pool>`, moto serves `/<pool>/.well-known/jwks.json`)."""
        found = {}
        for name, spec in self.template.jwt_authorizers().items():
            issuer = str(resolve(spec.issuer, self.resources.lookup, self.parameters))
            audience = resolve(spec.audience, self.resources.lookup, self.parameters)
            parts = urlsplit(issuer)
            jwks_url = (
                f"{self.aws_endpoint_url}{parts.path}/.well-known/jwks.json"
                if parts.hostname and parts.hostname.startswith("cognito-idp.")
                else f"{issuer.rstrip('/')}/.well-known/jwks.json"
            )
            header = spec.identity_source.removeprefix("$request.header.").lower()
            found[name] = JwtAuthorizer(
                issuer=issuer,
                audience=[str(a) for a in (audience if isinstance(audience, list) else [audience])],
                jwks=JwksCache(jwks_url),
                header=header,
            )
        return found

    def _start_gateway(self) -> None:
        self.gateway = LocalGateway(
            self.template.routes(),
            self.invoke,
            self.options.host,
            self.options.api_port,
            authorizers=self._authorizers() if self.options.auth else None,
        )
        self.gateway.start()

    def _start_pollers(self) -> None:
        kinesis = client("kinesis", self.aws_endpoint_url, session=base64_blobs_session())
        sqs = client("sqs", self.aws_endpoint_url)
        for mapping in self.template.event_source_mappings():
            props = resolve(dict(mapping.properties), self.resources.lookup, self.parameters)
            key = f"{mapping.function}:{mapping.kind}"
            stats = self.mapping_stats.setdefault(key, MappingStats())
            response_types = props.get("FunctionResponseTypes") or []
            if mapping.kind == "Kinesis":
                arn = str(props["Stream"])
                stream_name = arn.rsplit("/", 1)[-1]
                destination = (props.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
                k = KinesisMapping(
                    function=mapping.function,
                    stream_arn=arn,
                    stream_name=stream_name,
                    batch_size=int(props.get("BatchSize", 100)),
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
                    report_item_failures="ReportBatchItemFailures" in response_types,
                    bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    max_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
                    on_failure_queue_url=self._queue_url_of(destination),
                    parallelization_factor=int(props.get("ParallelizationFactor", 1)),
                )
                shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
                for shard in shards:
                    poller = KinesisShardPoller(
                        kinesis, sqs, self.invoke, k, shard["ShardId"], REGION, self.stop_event, stats
                    )
                    self._thread(poller.run, f"kinesis-{shard['ShardId']}")
            else:
                arn = str(props["Queue"])
                s = SqsMapping(
                    function=mapping.function,
                    queue_arn=arn,
                    queue_url=str(self._queue_url_of(arn)),
                    batch_size=int(props.get("BatchSize", 10)),
                    window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_item_failures="ReportBatchItemFailures" in response_types,
                )
                self._thread(SqsPoller(sqs, self.invoke, s, REGION, self.stop_event, stats).run, f"sqs-{arn}")

    def _start_schedules(self) -> None:
        """A runner per enabled `Schedule` event (its expression checked at start), and a thread invoking its
        function at each due time (UTC) as EventBridge does, unless schedules or event sources are off;
        `--parameter-overrides ChainSchedule="rate(5 minutes)"` makes the daily sweep run often."""
        for event in self.template.schedules():
            props = resolve(dict(event.properties), self.resources.lookup, self.parameters)
            where = f"{event.function} event {event.name}"
            enabled = str(props.get("Enabled", True)).lower() != "false"
            if not enabled or str(props.get("State", "")).upper() == "DISABLED":
                continue
            unsupported = sorted({"RetryPolicy", "DeadLetterConfig", "ScheduleGroupName"} & set(props))
            if unsupported:
                raise TemplateError(f"{where}: the local cloud does not run {', '.join(unsupported)}")
            try:
                schedule = parse_schedule(str(props.get("Schedule", "")))
                payload = json.loads(props["Input"]) if "Input" in props else None
            except ValueError as exc:
                raise TemplateError(f"{where}: {exc}") from None
            rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/closecast-local-{event.function}-{event.name}"
            runner = ScheduleRunner(
                event.function,
                schedule,
                self.invoke,
                rule,
                REGION,
                ACCOUNT,
                self.stop_event,
                name=event.name,
                payload=payload,
            )
            self.schedules.append(runner)
            if self.schedules_fire:
                self._thread(runner.run, f"schedule-{event.function}-{event.name}")

    @property
    def schedules_fire(self) -> bool:
        return self.options.schedules and self.options.pollers

    def _queue_url_of(self, arn: Any) -> str | None:
        if not arn:
            return None
        for attrs in self.resources.attrs.values():
            if attrs.get("Arn") == arn and "QueueUrl" in attrs:
                return str(attrs["QueueUrl"])
        raise TemplateError(f"no local queue with ARN {arn}")

    def _thread(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    # ------------------------------------------------------------------ state
    def output(self, name: str) -> Any:
        value = self.template.doc.get("Outputs", {}).get(name, {}).get("Value")
        return resolve(value, self.resources.lookup, self.parameters)

    def _write_state(self) -> None:
        assert self.gateway is not None and self.data_api is not None
        streams = self.template.of_type("AWS::Kinesis::Stream")
        stream = "SnapshotStream" if "SnapshotStream" in streams else streams[0]
        bucket = self.template.of_type("AWS::S3::Bucket")[0]
        self.state = {
            "api_url": self.gateway.url,
            "dashboard_url": f"{self.gateway.url}/dashboard/",
            "aws_endpoint_url": self.aws_endpoint_url,
            "data_api_endpoint_url": self.data_api.url,
            "region": REGION,
            "stream_name": self.resources.refs[stream],
            "stream_arn": self.resources.attrs[stream]["Arn"],
            "prediction_stream_name": self.resources.refs.get("PredictionStream"),
            "bucket": self.resources.refs[bucket],
            "train_jobs_queue_url": self.resources.refs.get("TrainJobsQueue"),
            "inference_jobs_queue_url": self.resources.refs.get("InferenceJobsQueue"),
            "jobs_dead_letter_queue_url": self.resources.refs.get("JobsDeadLetterQueue"),
            "ingest_failure_queue_url": self.resources.refs.get("IngestFailureQueue"),
            "db_cluster_arn": self.cluster_arn,
            "db_secret_arn": self.secret_arn,
            "db_reader_secret_arn": self.resources.refs.get("DatabaseReaderSecret"),
            "db_writer_secret_arn": self.resources.refs.get("DatabaseWriterSecret"),
            "database": self.database,
            "auth": self.options.auth,
            "demo_user": self.demo_user,
            "functions": sorted(self.template.functions),
            "schedules": {
                f"{runner.function}.{runner.name}": {
                    "expression": runner.schedule.expression,
                    "next_run": runner.stats.next_run if self.schedules_fire else None,
                }
                for runner in self.schedules
            },
            "parameter_overrides": self.options.parameter_overrides,
            "resources": {"refs": self.resources.refs, "attrs": self.resources.attrs},
            "logs": str(self.options.state_dir / "logs"),
            "pid": os.getpid(),
            "started_in_s": round(self.started_in_s, 3),
        }
        path = self.options.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(path)

    def _bucket_dir(self) -> Path:
        return self.options.state_dir / "s3"

    # ------------------------------------------------------------------ drills
    def stop_database(self) -> None:
        """Stop the embedded PostgreSQL, data kept (an outage drill): meanwhile the Data API answers
        `DatabaseUnavailableException`, as for a cluster that cannot be reached."""
        if not isinstance(self.postgres, EmbeddedPostgres):
            raise RuntimeError("only the embedded PostgreSQL can be stopped and started by the local cloud")
        self.postgres.stop()

    def start_database(self) -> None:
        """Start the embedded PostgreSQL again on the same data (the Data API reconnects by itself)."""
        if not isinstance(self.postgres, EmbeddedPostgres):
            raise RuntimeError("only the embedded PostgreSQL can be stopped and started by the local cloud")
        self.postgres = start_embedded(self.options.state_dir / "pg")

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10)
        if self.gateway is not None:
            self.gateway.stop()
        if self.runtime is not None:
            self.runtime.close()
        if self.moto is not None:
            self.moto.terminate()
            try:
                self.moto.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.moto.kill()
                self.moto.wait()
            self.moto = None
        if self.data_api is not None:
            self.data_api.stop()
            self.data_api = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        state = self.options.state_dir / STATE_FILE
        if state.exists() and self.state.get("pid") == os.getpid():
            state.unlink()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_TOKENS: dict[str, tuple[str, float]] = {}  # user pool id -> (access token, expiry as time.time())
_TOKENS_LOCK = threading.Lock()


def auth_headers(state: dict[str, Any]) -> dict[str, str]:
    """The Authorization header for the demo user on this local cloud (a token is reused until a minute before
    it expires); no header when the cloud runs with `--no-auth`."""
    if not state.get("auth"):
        return {}
    pool = str(state["demo_user"]["user_pool_id"])
    with _TOKENS_LOCK:
        token, expires = _TOKENS.get(pool, ("", 0.0))
        if time.time() > expires - 60:
            result = sign_in(state)
            token, expires = str(result["AccessToken"]), time.time() + float(result["ExpiresIn"])
            _TOKENS[pool] = (token, expires)
    return {"Authorization": f"Bearer {token}"}


def sign_in(
    state: dict[str, Any], username: str | None = None, password: str | None = None
) -> dict[str, Any]:
    """Sign the demo user (or another) in to the local user pool: Cognito's AuthenticationResult
    (`AccessToken`, `IdToken`, `RefreshToken`, `ExpiresIn`)."""
    demo = state.get("demo_user") or {}
    if not demo:
        raise RuntimeError("the local cloud has no user pool")
    idp = client("cognito-idp", state["aws_endpoint_url"])
    answer = idp.initiate_auth(
        ClientId=demo["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username or demo["username"], "PASSWORD": password or demo["password"]},
    )
    result: dict[str, Any] = answer["AuthenticationResult"]
    return result
