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
    bounds its retries and names an on-failure destination."""
    (mapping,) = [m for m in template.event_source_mappings() if m.kind == "Kinesis"]
    props = mapping.properties
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BisectBatchOnFunctionError"] is True
    assert "MaximumRetryAttempts" in props
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["IngestFailureQueue", "Arn"]
    }


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
        "${DataBucket.Arn}/quarantine/*",  # ingest
    ]


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
