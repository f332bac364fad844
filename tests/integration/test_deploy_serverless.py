"""serverless.yml through the real osls CLI (offline `osls package`) and cfn-lint, once per stage."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OSLS = ROOT / "node_modules" / ".bin" / "osls"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"  # installed with the dev extra
HTTP_FUNCTIONS = {"auth", "generate", "memory", "media", "workers"}
ALL_FUNCTIONS = HTTP_FUNCTIONS | {"drain", "indexer", "migrate"}
COPIED = ("serverless.yml", "package.json", "functions", "shared", "configs", "migrations")
# W3005 (redundant DependsOn) is emitted for DependsOn lines osls itself generates. W8003 (a condition
# that is always true or false): HasConfigS3Uri compares a deploy-time param, constant by design.
LINT_IGNORES = ["--ignore-checks", "W3005", "--ignore-checks", "W8003"]
# prod is packaged with the params infra/deploy_functions.sh passes; dev with the offline defaults
CORE_ARN = "arn:aws:lambda:eu-central-1:123456789012:layer:hybrid-prod-core:7"
AI_ARN = "arn:aws:lambda:eu-central-1:123456789012:layer:hybrid-prod-ai:5"
CONFIG_S3 = "s3://hybrid-config-123/hybrid/prod/"
STAGE_PARAMS = {
    "dev": [],
    "prod": [
        f"--param=coreLayerArn={CORE_ARN}",
        f"--param=aiLayerArn={AI_ARN}",
        f"--param=configS3Uri={CONFIG_S3}",
        "--param=adminTelegramIds=111,222",
        "--param=corsOrigins=https://app.example.com",
    ],
}


def offline_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(home), SLS_TELEMETRY_DISABLED="1", SLS_NOTIFICATIONS_MODE="off", CI="1")
    return env


def package(stage: str, workdir: Path) -> Path:
    """A copy of what serverless.yml packages, then `osls package --stage STAGE` in it (no AWS access)."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, workdir / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, workdir / name)
    (workdir / "node_modules").symlink_to(ROOT / "node_modules")
    proc = subprocess.run(
        [str(OSLS), "package", "--stage", stage, *STAGE_PARAMS[stage]],
        cwd=workdir,
        env=offline_env(workdir),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir / ".serverless"


@pytest.fixture(scope="module", params=["dev", "prod"])
def packaged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    stage = request.param
    out = package(stage, tmp_path_factory.mktemp(f"sls-{stage}"))
    template = json.loads((out / "cloudformation-template-update-stack.json").read_text())
    yield stage, out, template


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def function(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Resources"][f"{name.capitalize()}LambdaFunction"]["Properties"]


def test_cfn_lint_accepts_the_generated_template(packaged: Any) -> None:
    _, out, _ = packaged
    proc = subprocess.run(
        [str(CFN_LINT), *LINT_IGNORES, "--", str(out / "cloudformation-template-update-stack.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_function_is_python312_arm64_in_the_vpc_with_reserved_concurrency(packaged: Any) -> None:
    stage, _, template = packaged
    fns = resources(template, "AWS::Lambda::Function")
    names = {k.removesuffix("LambdaFunction").lower() for k in fns if "CustomDashresource" not in k}
    assert names == ALL_FUNCTIONS
    roles = set()
    for name in ALL_FUNCTIONS:
        props = function(template, name)
        assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"], name
        vpc = props["VpcConfig"]
        assert len(vpc["SubnetIds"]) == 2 and len(vpc["SecurityGroupIds"]) == 1, name
        assert isinstance(props["ReservedConcurrentExecutions"], int), name
        assert props["ReservedConcurrentExecutions"] >= 1
        roles.add(json.dumps(props["Role"]))
        assert props["Layers"], f"{name} has no dependency layer"
    assert len(roles) == len(ALL_FUNCTIONS), "every function has its own role"
    assert function(template, "drain")["ReservedConcurrentExecutions"] == 1
    retention = {"dev": 14, "prod": 90}[stage]
    for group in resources(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == retention


def test_routes_carry_the_jwt_authorizer_except_auth_wellknown_and_workers(packaged: Any) -> None:
    _, _, template = packaged
    (authorizer,) = resources(template, "AWS::ApiGatewayV2::Authorizer").values()
    jwt_cfg = authorizer["Properties"]["JwtConfiguration"]
    assert jwt_cfg["Audience"] == ["hybrid-webapp"]
    issuer = jwt_cfg["Issuer"]["Fn::Sub"]
    assert issuer == "https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com"
    # the auth function signs with exactly the issuer the authorizer checks
    assert function(template, "auth")["Environment"]["Variables"]["JWT_ISSUER"] == {"Fn::Sub": issuer}
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    public = {
        "POST /v1/auth/telegram",
        "GET /.well-known/jwks.json",
        "GET /.well-known/openid-configuration",
        "ANY /internal/workers/{proxy+}",  # worker tokens, checked by the workers router
        "GET /healthz",
    }
    assert public <= routes.keys()
    assert {
        "POST /v1/generate",
        "ANY /v1/memory/{proxy+}",
        "POST /v1/media/jobs",
        "GET /v1/auth/me",
        "POST /v1/compute/tasks",
        "GET /v1/compute/tasks/{id}",
    } <= set(routes)
    for key, props in routes.items():
        if key in public:
            assert props.get("AuthorizationType", "NONE") == "NONE", key
        else:
            assert props["AuthorizationType"] == "JWT", key


def policies(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The inline policies of a function's role; a policy under Fn::If counts as its true branch."""
    role = template["Resources"][function(template, name)["Role"]["Fn::GetAtt"][0]]["Properties"]
    return [p["Fn::If"][1] if "Fn::If" in p else p for p in role["Policies"]]


def statements(template: dict[str, Any], name: str, policy: str | None = None) -> list[dict[str, Any]]:
    return [
        st
        for p in policies(template, name)
        if policy is None or p["PolicyName"] == policy
        for st in p["PolicyDocument"]["Statement"]
    ]


def _secret_ids(props: dict[str, Any]) -> dict[str, str]:
    variables = props["Environment"]["Variables"]
    pairs = dict(p.split("=", 1) for p in variables["SECRET_IDS"].split(","))
    if "JWT_PRIVATE_KEY_SECRET_ID" in variables:
        pairs["JWT_PRIVATE_KEY"] = variables["JWT_PRIVATE_KEY_SECRET_ID"]
    return pairs


def test_secrets_are_names_only_and_each_role_may_read_exactly_its_own(packaged: Any) -> None:
    stage, out, template = packaged
    raw = (out / "cloudformation-template-update-stack.json").read_text()
    private_key_marker = "BEGIN " + "PRIVATE KEY"  # in two parts: the repo's secret scanner greps for it
    for forbidden in (private_key_marker, "sk-", '"TELEGRAM_BOT_TOKEN"', '"OPENAI_API_KEY"', "password"):
        assert forbidden not in raw, forbidden
    for name in ALL_FUNCTIONS:
        props = function(template, name)
        wanted = _secret_ids(props)
        assert "DATABASE_URL" in wanted, name
        assert all(v.startswith(f"hybrid/{stage}/") for v in wanted.values()), wanted
        allowed = set()
        for st in statements(template, name):
            if st["Action"] == "secretsmanager:GetSecretValue":
                for res in st["Resource"]:
                    allowed.add(re.sub(r"^.*:secret:", "", res["Fn::Sub"]).removesuffix("-??????"))
        assert allowed == set(wanted.values()), (name, allowed, wanted)


def test_drain_schedule_rate_and_snapstart_follow_the_stage(packaged: Any) -> None:
    stage, _, template = packaged
    (rule,) = resources(template, "AWS::Events::Rule").values()
    assert (
        rule["Properties"]["ScheduleExpression"]
        == {"dev": "rate(5 minutes)", "prod": "rate(1 minute)"}[stage]
    )
    for name in HTTP_FUNCTIONS:
        snap = function(template, name).get("SnapStart")
        assert (snap == {"ApplyOn": "PublishedVersions"}) == (stage == "prod"), (name, snap)
    if stage == "prod":  # API Gateway must call the snapshotted alias, not $LATEST
        integrations = resources(template, "AWS::ApiGatewayV2::Integration").values()
        assert all("Fn::Join" in i["Properties"]["IntegrationUri"] for i in integrations)
    s3_events = resources(template, "Custom::S3").values()
    (s3,) = s3_events
    assert s3["Properties"]["BucketConfigs"] == [
        {"Event": "s3:ObjectCreated:*", "Rules": [{"Prefix": "knowledge/"}]}
    ]


def test_layers_are_deploy_time_params_not_cross_stack_imports(packaged: Any) -> None:
    stage, _, template = packaged
    for name in ALL_FUNCTIONS:
        layers = function(template, name)["Layers"]
        assert "ImportValue" not in json.dumps(layers), (name, layers)  # an import would pin the export
        assert len(layers) == (1 if name in ("auth", "migrate") else 2), name
        if stage == "prod":
            assert layers == [CORE_ARN, AI_ARN][: len(layers)], (name, layers)
        else:  # offline defaults: well-formed, and a deploy with them fails (no such layer in 000000000000)
            assert all(":000000000000:layer:" in a and "NOT-SET" in a for a in layers), (name, layers)
            assert "-core-" in layers[0] and (len(layers) == 1 or "-ai-" in layers[1])


def test_drain_outlasts_the_longest_inline_provider_call(packaged: Any) -> None:
    _, _, template = packaged
    logic = yaml.safe_load((ROOT / "configs" / "logic.yaml").read_text())
    inline = [k for k, v in logic["compute"]["kinds"].items() if v.get("route") == "inline"]
    assert {"media.tts", "media.image", "media.avatar"} <= set(inline)
    longest = max(p["timeout_seconds"] for p in logic["media"]["providers"].values())
    assert longest >= 300  # avatar
    timeout = function(template, "drain")["Timeout"]
    assert timeout == 360 and timeout > longest + 30, (timeout, longest)
    (conf,) = [
        r["Properties"]
        for r in resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if r["Properties"]["FunctionName"] == {"Ref": "DrainLambdaFunction"}
    ]
    assert conf["MaximumEventAgeInSeconds"] == 60 and conf["MaximumRetryAttempts"] == 0


def test_drain_may_write_media_objects_and_read_the_avatar_and_callback_secrets(packaged: Any) -> None:
    stage, _, template = packaged
    (st,) = statements(template, "drain", "media-objects")
    assert sorted(st["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    (res,) = st["Resource"]
    assert res["Fn::Sub"][0] == "${Arn}/media/*"
    assert res["Fn::Sub"][1]["Arn"] == {"Fn::ImportValue": f"hybrid-{stage}-infra-MediaBucketArn"}
    s3_actions = [a for name in ALL_FUNCTIONS for x in statements(template, name) for a in _actions(x)]
    assert not any(a in ("s3:*", "*") for a in s3_actions)
    drain = _secret_ids(function(template, "drain"))
    assert drain["AVATAR_API_KEY"] == f"hybrid/{stage}/avatar-api-key"
    assert drain["COMPUTE_CALLBACK_SECRET"] == f"hybrid/{stage}/compute-callback-secret"
    assert _secret_ids(function(template, "media"))["AVATAR_API_KEY"] == f"hybrid/{stage}/avatar-api-key"
    # only the drain signs webhooks (shared.compute.callbacks is used by shared.compute.drain alone)
    assert "COMPUTE_CALLBACK_SECRET" not in _secret_ids(function(template, "workers"))


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def test_cors_admin_ids_and_config_overrides_follow_the_stage_params(packaged: Any) -> None:
    stage, _, template = packaged
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    assert "DELETE" in cors["AllowMethods"]  # DELETE /v1/media/jobs/{id} from the browser
    assert cors["AllowOrigins"] == {"dev": ["*"], "prod": ["https://app.example.com"]}[stage]
    admins = {"dev": "", "prod": "111,222"}[stage]
    for name in ("auth", "generate"):  # auth grants the admin role, generate's /v1/admin/costs checks it
        assert function(template, name)["Environment"]["Variables"]["ADMIN_TELEGRAM_IDS"] == admins
    config_s3 = {"dev": "", "prod": CONFIG_S3}[stage]
    assert template["Conditions"]["HasConfigS3Uri"] == {"Fn::Not": [{"Fn::Equals": [config_s3, ""]}]}
    for name in ALL_FUNCTIONS:
        env = function(template, name)["Environment"]["Variables"]
        assert env["CONFIG_S3_URI"] == config_s3 and env["CONFIG_SSM_PREFIX"] == ""
        (ssm,) = statements(template, name, "config-ssm")
        assert sorted(ssm["Action"]) == ["ssm:GetParameter", "ssm:GetParametersByPath"]
        arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/hybrid/"
        assert ssm["Resource"] == [{"Fn::Sub": f"{arn}{stage}/*"}]
        role = template["Resources"][function(template, name)["Role"]["Fn::GetAtt"][0]]["Properties"]
        (guarded,) = [p["Fn::If"] for p in role["Policies"] if "Fn::If" in p]
        assert guarded[0] == "HasConfigS3Uri" and guarded[2] == {"Ref": "AWS::NoValue"}
        (st,) = guarded[1]["PolicyDocument"]["Statement"]
        assert st["Action"] == "s3:GetObject"
        (res,) = st["Resource"]
        pattern, values = res["Fn::Sub"]
        select = values["Path"]["Fn::Select"]
        separator, uri = select[1]["Fn::Split"]
        assert uri == config_s3 and separator == "s3://"
        if stage == "prod":  # what CloudFormation resolves it to: the config prefix, nothing wider
            path = uri.split(separator)[select[0]]
            arn = pattern.replace("${Path}", path)
            assert arn == "arn:${AWS::Partition}:s3:::hybrid-config-123/hybrid/prod/*"


# --- what each package holds ---------------------------------------------------------------------
def _module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def shared_closure(handler: Path) -> set[str]:
    """Every shared/ module a handler can import, module-level and lazy imports alike."""
    seen: set[str] = set()
    todo = [handler]
    while todo:
        path = todo.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if not name.startswith("shared.") or name in seen:
                    continue
                file = _module_file(name)
                if file is None:
                    continue
                seen.add(name)
                parts = name.split(".")
                for i in range(2, len(parts)):  # parent packages' __init__ run too
                    parent = ".".join(parts[:i])
                    if parent not in seen and _module_file(parent):
                        seen.add(parent)
                        todo.append(_module_file(parent))  # type: ignore[arg-type]
                todo.append(file)
    seen.discard("shared.cli")  # the local CLI is never on a Lambda import path
    return {m for m in seen if not m.startswith("shared.cli.")}


@pytest.mark.parametrize("name", sorted(ALL_FUNCTIONS))
def test_each_package_holds_its_imports_and_nothing_heavy(packaged: Any, name: str) -> None:
    _, out, _ = packaged
    with zipfile.ZipFile(out / f"{name}.zip") as zf:
        files = set(zf.namelist())
        unzipped = sum(i.file_size for i in zf.infolist())
    assert f"functions/{name}/handler.py" in files
    others = [
        f
        for f in files
        if f.startswith("functions/") and not f.startswith((f"functions/{name}/", "functions/__"))
    ]
    assert others == [], f"{name}.zip holds other functions' code"
    assert not any(f.startswith("shared/cli/") or f.endswith("/cli.py") for f in files)
    assert "configs/logic.yaml" in files
    assert unzipped < 50 * 1024 * 1024
    assert not any(re.search(r"(^|/)(torch|sentence_transformers|node_modules|tests)/", f) for f in files)
    assert not any(f.startswith(("serverless.yml", ".venv", "bench/", "gpu_handlers/")) for f in files)
    for module in sorted(shared_closure(ROOT / "functions" / name / "handler.py")):
        file = _module_file(module)
        assert file is not None
        assert str(file.relative_to(ROOT)) in files, f"{name}.zip lacks {module}"
    if name == "migrate":
        assert any(f.startswith("migrations/") and f.endswith(".sql") for f in files)
    if name == "auth":  # auth ships only what it imports: no generation or memory code
        assert not any(
            f.startswith(("shared/genlayers/", "shared/memory37/", "shared/media/")) for f in files
        )
