"""infra/ CloudFormation: lint-clean, and it exports exactly what serverless.yml imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATES = sorted(INFRA.glob("*.yaml"))


def load(name: str) -> Any:
    return cfn_yaml.load(str(INFRA / name))


def test_there_are_templates_and_cfn_lint_accepts_them() -> None:
    assert {p.name for p in TEMPLATES} >= {"stack.yaml", "layers.yaml"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--", *map(str, TEMPLATES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def exports(template: Any) -> set[str]:
    names = set()
    for out in template["Outputs"].values():
        if "Export" in out:
            sub = out["Export"]["Name"]["Fn::Sub"]
            assert sub.startswith("${AWS::StackName}-")
            names.add(sub.removeprefix("${AWS::StackName}-"))
    return names


def test_serverless_imports_only_what_the_stacks_export() -> None:
    text = (ROOT / "serverless.yml").read_text()
    assert "infraStack: hybrid-${sls:stage}-infra" in text
    infra_imports = set(re.findall(r"\$\{self:custom\.infraStack\}-(\w+)", text))
    assert infra_imports
    assert infra_imports <= exports(load("stack.yaml"))
    imports = re.findall(r"Fn::ImportValue:\s*(\S+)", text)
    assert imports and all(i.startswith("${self:custom.infraStack}-") for i in imports), imports


def test_layer_arns_are_outputs_passed_at_deploy_time_never_exports() -> None:
    """A new layer build replaces the LayerVersion; an export in use could not change with it."""
    layers = load("layers.yaml")
    assert exports(layers) == set()
    assert {"CoreLayerArn", "AiLayerArn"} <= layers["Outputs"].keys()
    text = (ROOT / "serverless.yml").read_text()
    assert "layersStack" not in text and "CoreLayerArn" not in text and "AiLayerArn" not in text
    script = (INFRA / "deploy_functions.sh").read_text()
    for output, param in (("CoreLayerArn", "coreLayerArn"), ("AiLayerArn", "aiLayerArn")):
        assert f"output {output}" in script and f'--param="{param}=$' in script
    assert "hybrid-$stage-layers" in script


def test_secret_names_match_what_the_functions_read() -> None:
    stack = load("stack.yaml")
    created = {
        r["Properties"]["Name"]["Fn::Sub"].replace("${Stage}", "STAGE")
        for r in stack["Resources"].values()
        if r["Type"] == "AWS::SecretsManager::Secret"
    }
    text = (ROOT / "serverless.yml").read_text()
    read = {"hybrid/STAGE/" + n for n in re.findall(r"\$\{self:custom\.secretPrefix\}/([a-z0-9-]+)", text)}
    assert read and read <= created
    assert {"hybrid/STAGE/avatar-api-key", "hybrid/STAGE/compute-callback-secret"} <= read
    for r in stack["Resources"].values():  # no secret value in the template
        if r["Type"] == "AWS::SecretsManager::Secret":
            assert "SecretString" not in r["Properties"]
    # the webhook key is ours: generated at create, never typed into a template or a shell
    callback = stack["Resources"]["ComputeCallbackSecret"]["Properties"]
    assert callback["GenerateSecretString"]["PasswordLength"] >= 32


def test_engine_version_fits_the_parameter_group_family() -> None:
    stack = load("stack.yaml")
    family = stack["Resources"]["DbClusterParameters"]["Properties"]["Family"]
    major = family.removeprefix("aurora-postgresql")
    param = stack["Parameters"]["DbEngineVersion"]
    pattern = re.compile(param["AllowedPattern"])
    assert pattern.fullmatch(param["Default"]) and param["Default"].split(".")[0] == major
    for ok in ("16.6", "16.8", "16.10"):
        assert pattern.fullmatch(ok), ok
    for bad in ("17.4", "15.10", "16.4", "16", "16.6.1"):  # other families, or no pgvector 0.8
        assert not pattern.fullmatch(bad), bad


def test_database_is_private_behind_rds_proxy_with_pgvector_capable_aurora() -> None:
    res = load("stack.yaml")["Resources"]
    cluster = res["DbCluster"]["Properties"]
    assert cluster["Engine"] == "aurora-postgresql" and "ServerlessV2ScalingConfiguration" in cluster
    assert cluster["StorageEncrypted"] is True
    assert res["DbWriter"]["Properties"]["PubliclyAccessible"] is False
    assert res["DbProxy"]["Properties"]["RequireTLS"] is True
    db_ingress = res["DatabaseSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [i["SourceSecurityGroupId"] for i in db_ingress] == [{"Ref": "ProxySecurityGroup"}]
    proxy_ingress = res["ProxySecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert [i["SourceSecurityGroupId"] for i in proxy_ingress] == [{"Ref": "LambdaSecurityGroup"}]
    params = res["DbClusterParameters"]["Properties"]["Parameters"]
    assert int(params["statement_timeout"]) > 0


def test_media_bucket_is_private_and_served_by_cloudfront() -> None:
    res = load("stack.yaml")["Resources"]
    block = res["MediaBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(block.values())
    origin = res["MediaDistribution"]["Properties"]["DistributionConfig"]["Origins"][0]
    assert "OriginAccessControlId" in origin
    statement = res["MediaBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "cloudfront.amazonaws.com"}


@pytest.mark.parametrize(
    ("alarm", "metric"),
    [
        ("DeadTasksAlarm", "TasksDead"),
        ("BreakerOpenAlarm", "ProviderBreakerOpen"),
        ("QueueAgeAlarm", "QueueOldestPendingAge"),
    ],
)
def test_alarms_watch_the_app_metrics(alarm: str, metric: str) -> None:
    res = load("stack.yaml")["Resources"]
    props = res[alarm]["Properties"]
    assert props["Namespace"] == "Hybrid" and props["MetricName"] == metric
    assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_queue_age_alarm_fires_after_15_minutes() -> None:
    props = load("stack.yaml")["Resources"]["QueueAgeAlarm"]["Properties"]
    assert props["Statistic"] == "Maximum" and props["Threshold"] == 900
    assert props["ComparisonOperator"] == "GreaterThanThreshold"


def test_error_rate_alarms_watch_each_function_of_this_service_only() -> None:
    functions = set(yaml.safe_load((ROOT / "serverless.yml").read_text())["functions"])
    res = load("stack.yaml")["Resources"]
    watched = set()
    for alarm in res.values():
        if alarm["Type"] != "AWS::CloudWatch::Alarm" or "Metrics" not in alarm["Properties"]:
            continue
        metrics = alarm["Properties"]["Metrics"]
        assert any("100 * errors / invocations" in m.get("Expression", "") for m in metrics)
        names = set()
        for m in metrics:
            if "MetricStat" not in m:
                continue
            metric = m["MetricStat"]["Metric"]
            assert metric["Namespace"] == "AWS/Lambda"
            (dim,) = metric["Dimensions"]  # never account-wide: always one function
            assert dim["Name"] == "FunctionName"
            names.add(dim["Value"]["Fn::Sub"])
        (name,) = names  # errors and invocations of the same function
        watched.add(name.removeprefix("hybrid-${Stage}-"))
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert watched == functions
    body = res["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    parsed = json.loads(body.replace("${AWS::Region}", "eu-central-1"))
    text = json.dumps(parsed)
    for metric in (
        "PromptTokens",
        "CompletionTokens",
        "LLMProviderLatency",
        "GenerationCacheHit",
        "Generations",
        "QueueDepth",
        "QueueOldestPendingAge",
        "TasksDead",
    ):
        assert metric in text, metric


def _fake_bin(folder: Path, outputs: dict[str, str]) -> dict[str, str]:
    """`aws` answering describe-stacks from ``outputs`` and `npx` recording its arguments."""
    folder.mkdir()
    lookups = "\n".join(f'*"{k}"*) echo "{v}" ;;' for k, v in outputs.items())
    aws = f'#!/bin/sh\necho "$@" >> "$CALLS"\ncase "$*" in\n{lookups}\n*) echo None ;;\nesac\n'
    (folder / "aws").write_text(aws)
    (folder / "npx").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done > "$NPX_ARGS"\n')
    for tool in ("aws", "npx"):
        (folder / tool).chmod(0o755)
    calls, args = str(folder / "calls"), str(folder / "args")
    return {"PATH": f"{folder}:/usr/bin:/bin", "CALLS": calls, "NPX_ARGS": args}


def test_deploy_functions_passes_the_layer_outputs_as_params(tmp_path: Path) -> None:
    core = "arn:aws:lambda:eu-west-1:123456789012:layer:hybrid-prod-core:9"
    ai = "arn:aws:lambda:eu-west-1:123456789012:layer:hybrid-prod-ai:4"
    env = _fake_bin(tmp_path / "bin", {"CoreLayerArn": core, "AiLayerArn": ai}) | {"AWS_REGION": "eu-west-1"}
    proc = subprocess.run(
        ["bash", str(INFRA / "deploy_functions.sh"), "prod", "--param=runpodEndpointId=ep1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "bin" / "args").read_text().split("\n")
    assert args[:6] == ["osls", "deploy", "--stage", "prod", "--region", "eu-west-1"]
    assert f"--param=coreLayerArn={core}" in args and f"--param=aiLayerArn={ai}" in args
    assert "--param=runpodEndpointId=ep1" in args
    calls = (tmp_path / "bin" / "calls").read_text()
    assert "--stack-name hybrid-prod-layers" in calls and "--region eu-west-1" in calls


def test_deploy_functions_refuses_without_a_published_layers_stack(tmp_path: Path) -> None:
    env = _fake_bin(tmp_path / "bin", {})
    script = str(INFRA / "deploy_functions.sh")
    proc = subprocess.run(["bash", script, "dev"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "build_layers.sh --publish dev" in proc.stderr
    assert not (tmp_path / "bin" / "args").exists()  # osls never ran
