"""template.yaml as the source of truth: what the design requires of it, read by the same code the local
cloud uses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from closecast_tools.local.template import Template, resolve

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> Template:
    return Template(REPO / "template.yaml")


def test_every_zip_function_handler_imports(template: Template, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given each zip function of the template, when its handler module is imported from its CodeUri (with no
    environment at all), then it imports without side effects and exposes a callable handler."""
    for name in list(__import__("os").environ):
        if name.startswith(("DB_", "BUCKET_")):
            monkeypatch.delenv(name)
    for logical_id, spec in template.functions.items():
        if spec.package_type != "Zip":
            continue
        module_name, _, attr = spec.handler.rpartition(".")
        path = REPO / spec.code_dir / f"{module_name}.py"
        module_spec = importlib.util.spec_from_file_location(f"fn_{logical_id}", path)
        assert module_spec and module_spec.loader, logical_id
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        assert callable(getattr(module, attr)), logical_id


def test_ingest_mapping_has_partial_batches_bisect_retries_and_destination(template: Template) -> None:
    """Given the Kinesis mapping of the ingest function, then it reports item failures, bisects on error,
    retries until its records expire from the stream (by default) and names an on-failure destination."""
    (mapping,) = [
        m for m in template.event_source_mappings() if m.kind == "Kinesis" and m.function == "IngestFunction"
    ]
    props = mapping.properties
    defaults = template.parameter_defaults()
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == {"Ref": "IngestMaximumRetryAttempts"}
    assert props["MaximumRecordAgeInSeconds"] == {"Ref": "IngestMaximumRecordAgeInSeconds"}
    assert defaults["IngestMaximumRetryAttempts"] == defaults["IngestMaximumRecordAgeInSeconds"] == -1
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["IngestFailureQueue", "Arn"]
    }


def test_alarms_watch_the_iterator_age_the_failure_queue_and_the_dead_letter_queue(
    template: Template,
) -> None:
    """Given the alarms, then one watches the ingest function's iterator age and one each the ingest failure
    queue and the jobs dead-letter queue, all notifying the alarm topic."""
    watched = {}
    for alarm_id in template.of_type("AWS::CloudWatch::Alarm"):
        props = template.resources[alarm_id]["Properties"]
        dimension = props["Dimensions"][0]["Value"]
        watched[props["MetricName"], str(dimension)] = props["AlarmActions"]
    assert set(watched) == {
        ("IteratorAge", str({"Ref": "IngestFunction"})),
        ("ApproximateNumberOfMessagesVisible", str({"Fn::GetAtt": ["IngestFailureQueue", "QueueName"]})),
        ("ApproximateNumberOfMessagesVisible", str({"Fn::GetAtt": ["JobsDeadLetterQueue", "QueueName"]})),
    }
    assert all(actions == [{"Ref": "AlarmTopic"}] for actions in watched.values())


def test_every_resource_has_get_and_post_with_and_without_trailing_slash(template: Template) -> None:
    """Given the HTTP routes, then each of the resources answers GET and POST on both path spellings."""
    keys = {r.route_key for r in template.routes()}
    for resource in ("/stock_data", "/date_mappings", "/models", "/model-inferences", "/jobs"):
        for method in ("GET", "POST"):
            assert f"{method} {resource}" in keys
            assert f"{method} {resource}/" in keys


def test_database_is_aurora_serverless_with_data_api_and_managed_secret(template: Template) -> None:
    """Given the cluster, then it is Aurora PostgreSQL with the Data API on, a managed secret, min capacity 0."""
    (cluster_id,) = template.of_type("AWS::RDS::DBCluster")
    props = template.resources[cluster_id]["Properties"]
    assert props["Engine"] == "aurora-postgresql"
    assert props["EnableHttpEndpoint"] is True
    assert props["ManageMasterUserPassword"] is True
    assert template.parameter_defaults()["DatabaseMinCapacity"] == 0
    assert props["ServerlessV2ScalingConfiguration"]["MinCapacity"] == {"Ref": "DatabaseMinCapacity"}


def test_bucket_is_encrypted_private_and_tls_only(template: Template) -> None:
    """Given the data bucket, then it is encrypted, blocks public access, and its policy denies plain HTTP."""
    (bucket,) = template.of_type("AWS::S3::Bucket")
    props = template.resources[bucket]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    (policy,) = template.of_type("AWS::S3::BucketPolicy")
    statement = template.resources[policy]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_no_function_has_wildcard_permissions(template: Template) -> None:
    """Given every inline policy statement and the shared managed policy, then none allows `*` actions or
    resources, and only the ingest function may write (to the quarantine prefix only)."""
    statements = []
    for spec in template.functions.values():
        for policy in spec.properties.get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                statements.extend(policy["Statement"])
    for policy_id in template.of_type("AWS::IAM::ManagedPolicy"):
        statements.extend(template.resources[policy_id]["Properties"]["PolicyDocument"]["Statement"])
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), statement
        assert statement["Resource"] != "*", statement
    s3_writes = [s for s in statements if "s3:PutObject" in str(s["Action"])]
    assert sorted(s["Resource"]["Fn::Sub"] for s in s3_writes) == [
        "${DataBucket.Arn}/days/*",  # train: the day store
        "${DataBucket.Arn}/models/*",  # train: model files
        "${DataBucket.Arn}/predictions/*",  # inference
        "${DataBucket.Arn}/predictions/*",  # train: the daily chain's next-day inference
        "${DataBucket.Arn}/quarantine/*",  # ingest
    ]


def test_the_stream_has_a_second_consumer_that_predicts_and_publishes(template: Template) -> None:
    """Given the streaming predictor, then it is an image function consuming the snapshot stream with partial
    batches, bisect, bounded retries and its own failure destination, and may put records only on the
    predictions stream and read only the models."""
    (mapping,) = [m for m in template.event_source_mappings() if m.function == "PredictStreamFunction"]
    assert mapping.kind == "Kinesis" and mapping.source == {"Fn::GetAtt": ["SnapshotStream", "Arn"]}
    props = mapping.properties
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True and props["MaximumRetryAttempts"] >= 1
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["PredictFailureQueue", "Arn"]
    }
    spec = template.functions["PredictStreamFunction"]
    assert spec.package_type == "Image" and (REPO / spec.properties["Metadata"]["Dockerfile"]).is_file()
    statements = {
        s["Sid"]: s
        for p in spec.properties["Policies"]
        if isinstance(p, dict) and "Statement" in p
        for s in p["Statement"]
    }
    assert statements["PublishPredictions"]["Resource"] == {"Fn::GetAtt": ["PredictionStream", "Arn"]}
    assert statements["ReadModels"]["Action"] == ["s3:GetObject"]


def test_the_daily_chain_has_a_schedule_after_the_close(template: Template) -> None:
    """Given the chain's fallback, then a function runs on an EventBridge schedule and may send only to the
    train jobs queue; the ingest may start chains on the same queue."""
    spec = template.functions["ChainScheduleFunction"]
    (event,) = spec.properties["Events"].values()
    assert event["Type"] == "Schedule" and event["Properties"]["Schedule"] == {"Ref": "ChainSchedule"}
    for logical_id in ("ChainScheduleFunction", "IngestFunction"):
        environment = template.functions[logical_id].properties["Environment"]["Variables"]
        assert environment["CHAIN_JOBS_QUEUE_URL"] == {"Ref": "TrainJobsQueue"}


def test_train_and_inference_are_images_that_consume_their_own_jobs_queue(template: Template) -> None:
    """Given the image functions, then each is built from its Dockerfile on the repository context, consumes
    its own queue with partial batch responses, and may write only its own prefixes."""
    mappings = {m.function: m for m in template.event_source_mappings() if m.kind == "SQS"}
    for logical_id, queue in (
        ("TrainFunction", "TrainJobsQueue"),
        ("InferenceFunction", "InferenceJobsQueue"),
    ):
        spec = template.functions[logical_id]
        assert spec.package_type == "Image"
        assert spec.properties["Metadata"]["DockerContext"] == "."
        assert (REPO / spec.properties["Metadata"]["Dockerfile"]).is_file()
        assert mappings[logical_id].properties["Queue"] == {"Fn::GetAtt": [queue, "Arn"]}
        assert mappings[logical_id].properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert template.functions["TrainFunction"].memory >= 4096
    assert template.functions["TrainFunction"].timeout == 900


def test_intrinsics_resolve_against_local_resources() -> None:
    """Given Ref, GetAtt, Sub and Join, when resolved with a lookup, then the values come out as CloudFormation
    would compute them."""
    lookup = {("Bucket", None): "b", ("Bucket", "Arn"): "arn:aws:s3:::b"}
    value = {
        "a": {"Ref": "Bucket"},
        "b": {"Fn::Sub": "${Bucket.Arn}/x/${Stage}"},
        "c": {"Fn::Join": ["-", [{"Ref": "Stage"}, "y"]]},
        "d": {"Fn::GetAtt": ["Bucket", "Arn"]},
    }
    resolved = resolve(value, lambda logical_id, attr: lookup[(logical_id, attr)], {"Stage": "dev"})
    assert resolved == {"a": "b", "b": "arn:aws:s3:::b/x/dev", "c": "dev-y", "d": "arn:aws:s3:::b"}


def test_samconfig_deploys_with_the_capabilities_the_template_needs() -> None:
    """Given samconfig.toml, then `sam deploy` has IAM and macro capabilities (managed policy, SAM transform),
    resolves its artifact bucket and asks before changing the stack."""
    import tomllib

    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    for env in ("default", "prod"):
        deploy = config[env]["deploy"]["parameters"]
        assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
        assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is True


def test_the_migrations_resource_names_the_latest_migration(template: Template) -> None:
    """Given the SQL migrations shipped in the layer, then the custom resource's MigrationsVersion names the
    latest one, so that deploying a release with a new migration runs the migrate function again."""
    migrations = sorted((REPO / "layers/closecast/closecast/db/migrations").glob("*.sql"))
    (resource,) = [r for r in template.resources.values() if r["Type"] == "Custom::DatabaseMigrations"]
    assert resource["Properties"]["MigrationsVersion"] == migrations[-1].name.split("_", 1)[0]


# ------------------------------------------------------------------ sign-in and least privilege


def test_every_route_but_healthcheck_and_the_dashboard_page_has_the_jwt_authorizer(
    template: Template,
) -> None:
    """Given the HTTP routes, then each is guarded by the Cognito JWT authorizer except /healthcheck (the layer's
    only public API path) and the dashboard's static files (no data: the page signs in and calls the API)."""
    from closecast.api.auth import PUBLIC_PATHS

    routes = template.routes()
    assert routes
    api_routes = [r for r in routes if r.function != "DashboardFunction"]
    for route in api_routes:
        public = (route.path.rstrip("/") or "/") in PUBLIC_PATHS
        assert route.authorizer == (None if public else "CognitoJwt"), route
    assert {r.path.rstrip("/") for r in api_routes if r.authorizer is None} == set(PUBLIC_PATHS)
    page = [r for r in routes if r.function == "DashboardFunction"]
    assert page and all(r.authorizer is None and r.path.startswith("/dashboard") for r in page)
    assert all(r.method == "GET" for r in page)


def test_the_authorizer_trusts_our_pool_and_our_app_client_only(template: Template) -> None:
    """Given the JWT authorizer, then its issuer is the user pool's URL, its audience the app client, its token
    the Authorization header, and it is the API's default."""
    (spec,) = template.jwt_authorizers().values()
    assert spec.issuer == {"Fn::Sub": "https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"}
    assert spec.audience == [{"Ref": "UserPoolClient"}]
    assert spec.identity_source == "$request.header.Authorization"
    assert template.resources["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"] == spec.name


def test_the_user_pool_is_admin_only_with_a_strong_password_policy(template: Template) -> None:
    """Given the user pool and its app client, then nobody signs themselves up, passwords are long with every
    character class, and the client has no secret and the password, SRP and refresh flows only."""
    pool = template.resources["UserPool"]["Properties"]
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    policy = pool["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] >= 12
    assert all(
        policy[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols")
    )
    app = template.resources["UserPoolClient"]["Properties"]
    assert app["GenerateSecret"] is False
    assert set(app["ExplicitAuthFlows"]) == {
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    }


def test_the_pool_groups_are_the_ones_the_functions_check(template: Template) -> None:
    """Given the template's user pool groups, then they are exactly the readers and writers groups the API's
    rights check knows."""
    from closecast.api.auth import READERS, WRITERS

    groups = {
        template.resources[g]["Properties"]["GroupName"]
        for g in template.of_type("AWS::Cognito::UserPoolGroup")
    }
    assert groups == {READERS, WRITERS}


def _secret_reads(spec: object) -> list[object]:
    """The secrets a function may read: its SAM GetSecretValue policy templates and inline statements."""
    found: list[object] = []
    for policy in spec.properties.get("Policies", []):  # type: ignore[attr-defined]
        if isinstance(policy, dict) and "AWSSecretsManagerGetSecretValuePolicy" in policy:
            found.append(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"])
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if "secretsmanager" in str(statement["Action"]):
                found.append(statement["Resource"])
    return found


MASTER = {"Fn::GetAtt": ["DatabaseCluster", "MasterUserSecret.SecretArn"]}
READER = {"Ref": "DatabaseReaderSecret"}
WRITER = {"Ref": "DatabaseWriterSecret"}


def test_each_function_reads_only_its_own_secret_and_only_migrate_the_master(template: Template) -> None:
    """Given every function, then the only secret it may read is the one its DB_SECRET_ARN names (the migrate
    function also the two role secrets whose passwords it sets); the master secret belongs to migrate alone;
    no shared managed policy grants any secret; and Globals name no secret."""
    assert "DB_SECRET_ARN" not in template.doc["Globals"]["Function"]["Environment"]["Variables"]
    for policy_id in template.of_type("AWS::IAM::ManagedPolicy"):
        statements = template.resources[policy_id]["Properties"]["PolicyDocument"]["Statement"]
        assert not any("secretsmanager" in str(s["Action"]) for s in statements), policy_id
    for logical_id, spec in template.functions.items():
        reads = _secret_reads(spec)
        own = spec.environment.get("DB_SECRET_ARN")
        if {"Ref": "DataApiAccessPolicy"} in spec.properties.get("Policies", []):
            assert own is not None, f"{logical_id} uses the Data API but names no secret of its own"
        if logical_id == "MigrateFunction":
            assert own == MASTER
            assert sorted(map(str, reads)) == sorted(map(str, [MASTER, READER, WRITER]))
            assert spec.environment["DB_READER_SECRET_ARN"] == READER
            assert spec.environment["DB_WRITER_SECRET_ARN"] == WRITER
        else:
            assert reads == ([own] if own is not None else []), logical_id
            assert own != MASTER, logical_id


def test_get_routes_use_the_reader_secret_and_writes_the_writer_secret(template: Template) -> None:
    """Given the HTTP routes, then a function behind a GET route holds the reader secret, one behind a POST the
    writer secret (so no function serves both), and the stream's ingest function writes as the writer. The
    dashboard's static page holds no database secret at all."""
    for route in template.routes():
        if route.function == "DashboardFunction":
            assert "DB_SECRET_ARN" not in template.functions[route.function].environment
            continue
        secret = template.functions[route.function].environment["DB_SECRET_ARN"]
        assert secret == (READER if route.method == "GET" else WRITER), route
    assert template.functions["IngestFunction"].environment["DB_SECRET_ARN"] == WRITER


def test_the_role_secrets_name_the_roles_migration_0004_creates(template: Template) -> None:
    """Given the reader and writer secrets, then their usernames are the roles the migration creates and the
    migrate function sets passwords for."""
    import json

    from closecast.db.roles import ROLES

    sql = (REPO / "layers/closecast/closecast/db/migrations/0004_roles.sql").read_text()
    names = []
    for logical_id in ("DatabaseReaderSecret", "DatabaseWriterSecret"):
        spec = template.resources[logical_id]["Properties"]["GenerateSecretString"]
        assert spec["GenerateStringKey"] == "password" and spec["PasswordLength"] >= 32
        names.append(json.loads(spec["SecretStringTemplate"])["username"])
    assert tuple(names) == ROLES
    assert all(f"CREATE ROLE {name} LOGIN" in sql for name in names)
