"""docker-compose.yml, the Dockerfile and deploy/k8s checked against the code they start.

No Docker engine runs on CI, so nothing here builds an image or starts a container.
What would break a user's ``docker compose up`` or ``kubectl apply -k`` is checked
instead, against the real thing wherever there is one: the compose file is resolved by
Debian's ``docker-compose`` (``config``), every command a container runs is parsed by
debitwatch's own CLI parser, every ``DEBITWATCH_*`` variable must be a setting that
``Settings.from_env`` reads (it silently ignores unknown ones, so a typo would otherwise
keep a default), the ports and probe paths must be the worker's, the Kafka service must
be configured like the broker the Kafka tests run (``streams.kafka_local``), and every
file a container mounts must be in the repository. The commands themselves run against
a real broker in tests/kafka.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib import import_module
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from models.config import DetectionConfig
from models.incident_scoring import DEFAULT_MODEL
from streams.cli import build_parser
from streams.kafka_local import server_properties
from streams.settings import Settings

# PyYAML comes with the dev dependencies (schemathesis) but has no type hints there.
yaml: Any = import_module("yaml")

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
K8S_DIR = ROOT / "deploy" / "k8s"
CONFIGURATION_DOC = ROOT / "docs" / "configuration.md"

# Services that run the debitwatch image, and the optional ones (`--profile demo`).
DEBITWATCH_SERVICES = {"topics", "worker", "simulator", "webhook-receiver"}
DEMO_SERVICES = {"simulator", "webhook-receiver"}
# Mount targets in the third-party containers, and what the files there must be.
PROMETHEUS_DIR = "/etc/prometheus"
ALERTMANAGER_DIR = "/etc/alertmanager"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
GRAFANA_DASHBOARDS = "/var/lib/grafana/dashboards/debitwatch"
# Broker properties that are addresses or paths: they differ between a container and
# the tests' loopback broker by design. Every other KAFKA_* setting must be the same.
KAFKA_ADDRESSES = {
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
}


# --- loading ------------------------------------------------------------------------------


def docker_compose(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Debian's docker-compose (1.29) on the repository's compose file, in a clean
    environment: a SIMULATOR_PROFILE or .env on the developer's machine must not change
    what is checked."""
    binary = shutil.which("docker-compose") or "/usr/bin/docker-compose"
    if not Path(binary).is_file():
        pytest.fail(
            "docker-compose is not installed: the compose file is checked with the Debian "
            "package docker-compose (apt-get install docker-compose)"
        )
    clean = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ}
    with tempfile.TemporaryDirectory() as scratch:
        empty_env_file = Path(scratch) / "empty.env"  # instead of a developer's .env
        empty_env_file.write_text("")
        return subprocess.run(
            [binary, "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), *args],
            cwd=ROOT,
            env={**clean, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


def resolved_compose(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = docker_compose(*args, "config", env=env)
    assert result.returncode == 0, f"docker-compose {' '.join(args)} config:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (anchors merged, paths absolute)."""
    return resolved_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


@cache
def dockerfile() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        pending += line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip() + " "
            continue
        keyword, _, args = pending.partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), args.strip(), stage))
    return tuple(instructions)


def final_stage(keyword: str) -> list[str]:
    instructions = dockerfile()
    last = instructions[-1].stage
    return [i.args for i in instructions if i.keyword == keyword and i.stage == last]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in final_stage("ENV"):
        for word in shlex.split(args):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def image_user() -> tuple[int, int]:
    (user,) = final_stage("USER")
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def healthcheck_command() -> list[str]:
    (args,) = final_stage("HEALTHCHECK")
    _, _, exec_form = args.partition("CMD ")
    command: list[str] = json.loads(exec_form)
    return command


def run_commands(args: str) -> Iterator[list[str]]:
    """The simple commands of a RUN line (``a && b``), split like the shell would."""
    for part in args.split("&&"):
        words = shlex.split(part)
        if words:
            yield words


def debitwatch_runs() -> list[tuple[int, list[str]]]:
    """(instruction index, argv after `debitwatch`) of every debitwatch run at build time."""
    found = []
    for index, instruction in enumerate(dockerfile()):
        if instruction.keyword != "RUN":
            continue
        for words in run_commands(instruction.args):
            if PurePosixPath(words[0]).name == "debitwatch":
                found.append((index, words[1:]))
    return found


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(file name, document) of every manifest in deploy/k8s except the kustomization."""
    found = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                found.append((path.name, document))
    return tuple(found)


def k8s(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in k8s_documents() if document["kind"] == kind]


def k8s_named(kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in k8s(kind) if doc["metadata"]["name"] == name]
    return found


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in k8s("Deployment") + k8s("Job")
    ]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def strict(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` and its subcommands without abbreviated options: argparse would take
    ``--no-final-watermark`` for ``--no-final-watermarks``, until an option is added
    that shares the prefix and the deployment breaks. Deployment files spell them out."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                strict(child)
    return parser


def cli(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed by ``debitwatch``'s own parser, or the test fails saying which."""
    try:
        return strict(build_parser()).parse_args(argv)
    except SystemExit as stop:
        pytest.fail(f"`debitwatch {shlex.join(argv)}` does not parse (exit {stop.code})")


def subcommand(args: argparse.Namespace) -> tuple[str, str | None]:
    """``("topics", "create")`` for ``debitwatch topics create``, ``("worker", None)``."""
    return args.command, getattr(args, f"{args.command}_command", None)


def project_version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def debitwatch_image() -> str:
    return f"debitwatch:{project_version()}"


@cache
def known_variables() -> frozenset[str]:
    """The DEBITWATCH_* names ``Settings.from_env`` reads."""
    names = {"CONFIG"}
    names |= {f.name.upper() for f in dataclasses.fields(Settings)}
    names -= {"DETECTION", "DEADLINES"}  # tables, not variables
    names |= {f.name.upper() for f in dataclasses.fields(DetectionConfig)}
    # The webhook endpoints' variables are read by streams.webhooks, not Settings.
    webhooks: tuple[str, ...] = import_module("streams.webhooks.config").ENV_VARS
    return frozenset({f"DEBITWATCH_{name}" for name in names} | set(webhooks))


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as its container gets it: a name without a value is
    passed on from the environment of `docker compose`, so it is unset here."""
    environment = service.get("environment") or {}
    return {name: str(value) for name, value in environment.items() if value is not None}


def port_of(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"(?:[a-z]+://)?([\w.-]+):(\d+)/?", url)
    assert match, f"not host:port: {url}"
    return match[1], int(match[2])


# --- docker-compose.yml -------------------------------------------------------------------


def test_compose_config_resolves_with_and_without_the_demo_profile(
    services: dict[str, Any],
) -> None:
    assert set(services) == {
        "kafka", "topics", "worker", "prometheus", "alertmanager", "grafana", *DEMO_SERVICES,
    }  # fmt: skip
    demo = resolved_compose("--profile", "demo")
    assert set(demo["services"]) == set(services)
    # Only the demo's traffic and receiver are optional: the rest starts on a plain `up`.
    profiled = {name for name, service in services.items() if service.get("profiles")}
    assert profiled == DEMO_SERVICES
    assert all(services[name]["profiles"] == ["demo"] for name in DEMO_SERVICES)


def test_every_debitwatch_service_runs_the_project_image_and_a_command_that_parses(
    services: dict[str, Any],
) -> None:
    runs_image = {
        name for name, service in services.items() if service.get("image") == debitwatch_image()
    }
    assert runs_image == DEBITWATCH_SERVICES
    for name in DEBITWATCH_SERVICES:
        service = services[name]
        # Built from this repository's Dockerfile, not pulled from somewhere.
        assert Path(service["build"]["context"]) == ROOT
        cli(service["command"])
    assert subcommand(cli(services["topics"]["command"])) == ("topics", "create")


def test_simulator_sends_live_traffic_that_the_image_can_write_the_truth_of(
    services: dict[str, Any],
) -> None:
    for profile in ("default", "storm"):  # SIMULATOR_PROFILE=storm, as docs/deploy.md says
        resolved = resolved_compose(env={"SIMULATOR_PROFILE": profile, "SIMULATOR_RATE": "50"})
        args = cli(resolved["services"]["simulator"]["command"])
        assert args.to_kafka and args.profile == profile and args.rate == 50.0
    args = cli(services["simulator"]["command"])
    # Real time, no final far-future watermark: a restarted simulator continues the stream
    # instead of sending events behind a watermark that closed every window for good.
    assert args.speed == 1.0 and args.final_watermarks is False and args.duration > 0
    # The truth goes into the image's working directory, the one place the user may write.
    (workdir,) = final_stage("WORKDIR")
    assert PurePosixPath(str(args.truth)).parent == PurePosixPath(workdir)


def test_topics_worker_and_simulator_agree_on_kafka_and_the_topics(
    services: dict[str, Any],
) -> None:
    shapes = set()
    for name in ("topics", "worker", "simulator"):
        settings = Settings.from_env(service_env(services[name]))
        shapes.add(
            (
                settings.broker,
                settings.app_id,
                settings.partitions,
                settings.input_partitions,
                settings.replication,
                settings.terminal_topic,
                settings.issuer_topic,
                settings.alerts_topic,
            )
        )
    assert len(shapes) == 1, shapes
    settings = Settings.from_env(service_env(services["worker"]))
    # The broker address the workers use is the one the broker advertises.
    kafka_env = service_env(services["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
    assert settings.bootstrap == advertised == "kafka:9092"
    # One broker: a replication factor above 1 could not be created.
    assert settings.replication == 1


def test_the_worker_scales_and_listens_where_prometheus_and_the_image_look(
    services: dict[str, Any],
) -> None:
    worker = services["worker"]
    # `docker compose up --scale worker=3` needs N containers with no fixed name or host
    # port, and no shared named volume (RocksDB would be opened by several of them).
    assert "container_name" not in worker
    assert "hostname" not in worker
    assert "ports" not in worker
    assert "volumes" not in worker
    web_port = Settings().web_port
    assert Settings.from_env(service_env(worker)).web_port == web_port == 6066
    assert worker["expose"] == [str(web_port)]
    assert final_stage("EXPOSE") == [str(web_port)]
    # Stopping a worker must leave Faust time to commit and flush.
    assert worker["stop_grace_period"] == "60s"
    # The worker keeps the image's health check; the one-shot and demo services, whose
    # commands serve no /readyz, switch it off.
    assert "healthcheck" not in worker
    for name in DEBITWATCH_SERVICES - {"worker"}:
        assert services[name]["healthcheck"]["test"] == ["NONE"], name


def test_kafka_is_configured_like_the_broker_of_the_kafka_tests(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert version
    assert kafka["image"] == f"apache/kafka:{version[1]}"
    local = server_properties(9092, 9093, Path("/var/lib/kafka/data"))
    compared = []
    for name, value in service_env(kafka).items():
        assert name.startswith("KAFKA_"), name
        prop = name.removeprefix("KAFKA_").lower().replace("_", ".")
        if prop in local and prop not in KAFKA_ADDRESSES:
            assert value == local[prop], f"{name}={value}, the tests' broker has {local[prop]}"
            compared.append(prop)
    # The ones that change behaviour are among them, so this test is not vacuous.
    assert {
        "process.roles",
        "auto.create.topics.enable",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    } <= set(compared)
    # The health check asks the broker itself, with the tool shipped in the image.
    test = kafka["healthcheck"]["test"]
    assert test[:2] == ["CMD", "/opt/kafka/bin/kafka-broker-api-versions.sh"]
    assert test[2:] == ["--bootstrap-server", "localhost:9092"]
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("worker", "simulator"):
        condition = services[name]["depends_on"]["topics"]["condition"]
        assert condition == "service_completed_successfully"


def test_prometheus_and_alertmanager_images_are_the_releases_the_rules_are_tested_with(
    services: dict[str, Any],
) -> None:
    for tool, package, service in (
        ("promtool", "prometheus", "prometheus"),
        ("amtool", "prometheus-alertmanager", "alertmanager"),
    ):
        binary = shutil.which(tool)
        if binary is None:
            pytest.fail(f"{tool} is not installed: apt-get install {package}")
        output = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=False, timeout=30
        )
        tested = re.search(r"version (\d+\.\d+)\.", output.stdout + output.stderr)
        assert tested, output
        pinned = re.fullmatch(r"prom/\w+:v(\d+\.\d+)\.\d+", services[service]["image"])
        assert pinned, services[service]["image"]
        assert pinned[1] == tested[1], (
            f"{service} runs {pinned[1]}, but the test suite checks with {tool} {tested[1]}"
        )


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of a service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("/"):
            mounts[target] = Path(source)
    return mounts


def test_every_mounted_repository_path_exists(services: dict[str, Any]) -> None:
    mounted = {
        (name, target): source
        for name, service in services.items()
        for target, source in bind_mounts(service).items()
    }
    assert set(mounted) == {
        ("prometheus", PROMETHEUS_DIR),
        ("alertmanager", ALERTMANAGER_DIR),
        ("grafana", GRAFANA_PROVISIONING),
        ("grafana", GRAFANA_DASHBOARDS),
    }
    for (name, target), source in mounted.items():
        assert source.is_relative_to(ROOT), (name, source)
        assert source.is_dir(), f"{name} mounts {source} at {target}: missing"
    for relative in (
        "deploy/prometheus/prometheus.yml",
        "deploy/alertmanager/alertmanager.yml",
        "deploy/grafana/provisioning/datasources",
        "deploy/grafana/provisioning/dashboards",
    ):
        assert (ROOT / relative).exists(), f"{relative} is mounted by docker-compose.yml"


def in_repo(container_path: str, service: dict[str, Any]) -> Path:
    """The repository file behind a path inside a container, through its bind mounts."""
    for target, source in bind_mounts(service).items():
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path[len(target) :].lstrip("/")
    pytest.fail(f"{container_path} is not inside any bind mount")


def test_prometheus_config_finds_the_compose_services(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = in_repo(config_flag.partition("=")[2], prometheus)
    config = yaml.safe_load(config_path.read_text())
    for rule_file in config["rule_files"]:
        absolute = rule_file if rule_file.startswith("/") else f"{PROMETHEUS_DIR}/{rule_file}"
        assert list(in_repo(absolute, prometheus).parent.glob(Path(absolute).name)), rule_file
    worker_port = int(services["worker"]["expose"][0])
    jobs_finding_workers = []
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            if "worker" in sd["names"]:
                # One A record per container of the scaled service, on the worker's port.
                assert sd.get("type", "SRV") == "A" and sd["port"] == worker_port, sd
                jobs_finding_workers.append(job["job_name"])
        for group in job.get("static_configs", []):
            if any(target.split(":")[0] == "worker" for target in group["targets"]):
                assert f"worker:{worker_port}" in group["targets"]
                jobs_finding_workers.append(job["job_name"])
    # `--scale worker=3` needs the DNS job; a static `worker:6066` beside it scrapes one
    # container twice (two instance labels), so its counters count double in every sum.
    assert len(jobs_finding_workers) == 1, (
        f"in docker-compose the workers are scraped by {jobs_finding_workers}: exactly one "
        "job (the DNS one) may find the service `worker`"
    )
    alertmanagers = {
        target
        for alerting in config["alerting"]["alertmanagers"]
        for group in alerting["static_configs"]
        for target in group["targets"]
    }
    (published,) = services["alertmanager"]["ports"]
    assert alertmanagers == {f"alertmanager:{published['target']}"}


def test_alertmanager_reads_only_files_the_repository_has(services: dict[str, Any]) -> None:
    alertmanager = services["alertmanager"]
    config_flag = next(a for a in alertmanager["command"] if a.startswith("--config.file="))
    config_path = in_repo(config_flag.partition("=")[2], alertmanager)
    # The structure itself is amtool's business (test_prometheus_rules.py); here: every
    # file it names inside the mount (templates, credentials_file) is in the repository.
    config = yaml.safe_load(config_path.read_text())
    for path in strings(config):
        if path.startswith(ALERTMANAGER_DIR + "/"):
            assert in_repo(path, alertmanager).exists(), f"{config_path.name} reads {path}"


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def test_grafana_provisioning_points_at_the_compose_prometheus_and_mount(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    provisioning = bind_mounts(grafana)[GRAFANA_PROVISIONING]
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    (published,) = services["prometheus"]["ports"]
    assert [port_of(source["url"]) for source in datasources if source["type"] == "prometheus"] == [
        ("prometheus", published["target"])
    ]
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert [provider["options"]["path"] for provider in providers] == [GRAFANA_DASHBOARDS]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert in_repo(home, grafana).is_file(), home
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


# --- DEBITWATCH_* variables -----------------------------------------------------------------


def configured_variables(services: dict[str, Any]) -> dict[str, str]:
    """Every DEBITWATCH_* name the deployment files set -> where."""
    found: dict[str, str] = {}
    for name, service in services.items():
        for variable in service.get("environment") or {}:
            found.setdefault(variable, f"docker-compose.yml {name}")
    for variable in dockerfile_env():
        found.setdefault(variable, "Dockerfile ENV")
    for file_name, document in k8s_documents():
        if document["kind"] == "ConfigMap":
            for key in document.get("data", {}):
                if key.startswith("DEBITWATCH_"):
                    found.setdefault(key, f"deploy/k8s/{file_name}")
    for name, spec in pod_specs():
        for container in all_containers(spec):
            for entry in container.get("env", []):
                found.setdefault(entry["name"], f"deploy/k8s {name}/{container['name']}")
    return {name: where for name, where in found.items() if name.startswith("DEBITWATCH_")}


def test_every_debitwatch_variable_is_a_setting_or_documented(services: dict[str, Any]) -> None:
    found = configured_variables(services)
    assert {"DEBITWATCH_BROKER", "DEBITWATCH_DATA_DIR", "DEBITWATCH_CONFIG"} <= set(found)
    documented = CONFIGURATION_DOC.read_text()
    unknown = sorted(
        f"{name} ({where})"
        for name, where in found.items()
        if name not in known_variables() and name not in documented
    )
    assert not unknown, (
        "neither a setting (streams.settings) nor documented in docs/configuration.md: "
        + ", ".join(unknown)
    )


def test_every_environment_gives_valid_settings(services: dict[str, Any], tmp_path: Path) -> None:
    image = {k: v for k, v in dockerfile_env().items() if k.startswith("DEBITWATCH_")}
    for name in DEBITWATCH_SERVICES:
        env = {**image, **service_env(services[name])}
        settings = Settings.from_env(env)
        assert str(settings.data_dir) == image["DEBITWATCH_DATA_DIR"]
    # Kubernetes: the ConfigMap's variables with the ConfigMap's TOML file where the
    # pods mount it (unknown keys in it are errors, so this reads every key).
    env = k8s_named("ConfigMap", "debitwatch-env")["data"]
    toml = k8s_named("ConfigMap", "debitwatch-config")["data"]["debitwatch.toml"]
    config = tmp_path / "debitwatch.toml"
    config.write_text(toml)
    settings = Settings.from_env({**image, **env, "DEBITWATCH_CONFIG": str(config)})
    assert settings.broker == env["DEBITWATCH_BROKER"]
    assert settings.partitions >= k8s_named("Deployment", "debitwatch-worker")["spec"]["replicas"]
    assert settings.incident_model == "default"


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_builds_in_stages_and_runs_as_an_unprivileged_worker() -> None:
    froms = [i.args for i in dockerfile() if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: the wheel is built apart from the image"
    assert all(line.split()[0] == "python:3.11-slim" for line in froms), froms
    assert image_user() == (10001, 10001)
    (workdir,) = final_stage("WORKDIR")
    assert workdir == "/var/lib/debitwatch"
    data_dir = PurePosixPath(dockerfile_env()["DEBITWATCH_DATA_DIR"])
    assert data_dir.is_relative_to(workdir)
    (entrypoint,) = final_stage("ENTRYPOINT")
    (command,) = final_stage("CMD")
    assert json.loads(entrypoint) == ["debitwatch"]
    assert cli(json.loads(command)).command == "worker"
    # The final stage installs debitwatch from the build stage's wheels and nothing else.
    installs = [w for i in final_stage("RUN") for w in run_commands(i) if "install" in w]
    assert len(installs) == 1
    assert "--no-index" in installs[0] and installs[0][-1] == "debitwatch"


def test_dockerfile_trains_the_model_like_make_model_before_building_the_wheel() -> None:
    makefile = (ROOT / "Makefile").read_text()

    def make_variable(name: str) -> str:
        match = re.search(rf"^{name}\s*\?*:?=\s*(\S+)", makefile, re.MULTILINE)
        assert match, name
        return match[1]

    runs = debitwatch_runs()
    simulate = [(i, cli(argv)) for i, argv in runs if argv[0] == "simulate"]
    train = [(i, cli(argv)) for i, argv in runs if argv[0] == "train"]
    assert len(simulate) == 1 and len(train) == 1
    _, sim = simulate[0]
    train_at, fit = train[0]
    recipe = re.search(r"debitwatch simulate (.*?)\\\n(.*?)&&", makefile, re.DOTALL)
    assert recipe and "--profile default" in recipe[1]
    assert sim.profile == "default"
    assert sim.transactions == int(make_variable("MODEL_TRANSACTIONS"))
    assert sim.seed == int(make_variable("MODEL_SEED"))
    assert fit.captures == [sim.output]
    # Written where `incident_model = "default"` loads it, inside the package, and
    # matched by the package data the wheel carries.
    assert str(fit.output) == make_variable("MODEL") == str(DEFAULT_MODEL.relative_to(ROOT))
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = package_data["package-data"]["models"]
    within_package = str(DEFAULT_MODEL.relative_to(ROOT / "models"))
    assert any(fnmatch.fnmatch(within_package, pattern) for pattern in patterns)
    wheel_at = [
        index
        for index, instruction in enumerate(dockerfile())
        if instruction.keyword == "RUN" and "pip wheel" in instruction.args
    ]
    assert len(wheel_at) == 1 and train_at < wheel_at[0], "the model must be in the wheel"


def test_build_context_has_what_the_dockerfile_copies_and_not_the_local_model() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def is_ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern.rstrip("/")) for pattern in ignored)

    copied = [
        source
        for instruction in dockerfile()
        if instruction.keyword == "COPY" and "--from" not in instruction.args
        for source in shlex.split(instruction.args)[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not is_ignored(source.rstrip("/")), f"{source} is copied but .dockerignored"
    # A model trained on this machine must not replace the image's own.
    assert is_ignored(str(DEFAULT_MODEL.relative_to(ROOT)))
    assert is_ignored(".venv") and is_ignored(".git")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Readiness(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False), (None, False)])
def test_healthcheck_command_follows_readyz(status: int | None, healthy: bool) -> None:
    """The HEALTHCHECK's own command line, run as Docker would run it (with this Python
    for the image's): 200 from /readyz is healthy; a 503 while state is restored, or
    nothing listening, is not."""
    command = healthcheck_command()
    assert command[0] == "python"
    assert "/readyz" in command[-1] and "'6066'" in command[-1]  # Settings.web_port
    port = free_port()
    server = None
    if status is not None:
        handler = type("Handler", (_Readiness,), {"status": status})
        server = HTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [sys.executable, *command[1:]],
            env={"PATH": os.environ.get("PATH", ""), "DEBITWATCH_WEB_PORT": str(port)},
            capture_output=True,
            timeout=30,
            check=False,
        )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    assert (result.returncode == 0) is healthy, result.stderr


# --- deploy/k8s ---------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    kinds = sorted(document["kind"] for _, document in k8s_documents())
    assert kinds == ["ConfigMap", "ConfigMap", "Deployment", "Job", "Service", "Service"]
    assert [image["name"] for image in kustomization["images"]] == ["debitwatch"]


def test_k8s_containers_run_the_image_as_its_user_with_commands_that_parse() -> None:
    uid, gid = image_user()
    commands = []
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsUser"] == uid, name
        assert spec["securityContext"]["runAsGroup"] == gid, name
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in all_containers(spec):
            assert container["image"] == debitwatch_image(), container["name"]
            if "command" in container:  # a shell loop around debitwatch
                script = container["command"][-1]
                for match in re.finditer(r"debitwatch ([\w -]+?)(?:;|&&|$)", script):
                    commands.append(shlex.split(match[1]))
            else:  # the image's ENTRYPOINT, debitwatch
                commands.append(container["args"])
    parsed = [subcommand(cli(argv)) for argv in commands]
    assert sorted(parsed, key=str) == [
        ("topics", "check"),
        ("topics", "create"),
        ("worker", None),
    ]


def test_k8s_worker_probes_ports_and_scrape_annotations_match_the_worker() -> None:
    deployment = k8s_named("Deployment", "debitwatch-worker")
    assert deployment["spec"]["replicas"] == 2
    template = deployment["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    web_port = Settings().web_port
    annotations = template["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(web_port),
        "prometheus.io/path": "/metrics",
    }
    (worker,) = template["spec"]["containers"]
    (port,) = worker["ports"]
    assert port == {"name": "http", "containerPort": web_port}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert worker["resources"]["requests"] and worker["resources"]["limits"]["memory"]
    # Both Services select the worker pods on the named port; one is headless, for
    # Prometheus' DNS discovery, and lists pods that are not ready yet.
    services = k8s("Service")
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            (web_port, "http")
        ]
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert len(headless) == 1 and headless[0]["spec"]["publishNotReadyAddresses"] is True


def test_k8s_config_secrets_and_state_are_mounted_where_the_settings_say() -> None:
    config_maps = {doc["metadata"]["name"]: doc["data"] for doc in k8s("ConfigMap")}
    data_dir = PurePosixPath(dockerfile_env()["DEBITWATCH_DATA_DIR"])
    for name, spec in pod_specs():
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in all_containers(spec):
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            env_from = [ref["configMapRef"]["name"] for ref in container["envFrom"]]
            env = {k: v for ref in env_from for k, v in config_maps[ref].items()}
            # DEBITWATCH_CONFIG names a key of the ConfigMap mounted at its directory.
            config = PurePosixPath(env["DEBITWATCH_CONFIG"])
            volume = mounts[str(config.parent)]
            assert config.name in config_maps[volume["configMap"]["name"]], container["name"]
            # The worker's root file system is read-only: its state directory (the
            # image's DEBITWATCH_DATA_DIR) must be on a volume.
            if container["name"] == "worker":
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                writable = [path for path, vol in mounts.items() if "emptyDir" in vol]
                assert any(data_dir.is_relative_to(path) for path in writable), writable
            for entry in container.get("env", []):
                # Secrets come from a Secret made outside the repository, never a literal;
                # the one other variable is the pod's own address (WEB_HOST, for routing).
                assert "value" not in entry
                if "fieldRef" in entry["valueFrom"]:
                    assert entry == {
                        "name": "WEB_HOST",
                        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                    }
                    continue
                assert entry["valueFrom"]["secretKeyRef"]["name"] == "debitwatch-webhooks"
        assert spec.get("restartPolicy", "Always") in (
            ("Always",) if name == "debitwatch-worker" else ("OnFailure", "Never")
        )


# --- webhooks -------------------------------------------------------------------------------


def a_secret() -> str:
    """A fresh Standard Webhooks secret, made here: none is written in the repository."""
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_compose_webhooks_are_off_by_default_and_reach_the_demo_receiver_when_set(
    services: dict[str, Any],
) -> None:
    load_endpoints = import_module("streams.webhooks.config").load_endpoints
    assert load_endpoints(service_env(services["worker"])) == []
    secret = a_secret()
    receiver = services["webhook-receiver"]
    port = int(cli(receiver["command"]).port)
    assert receiver["expose"] == [str(port)]
    url = f"http://webhook-receiver:{port}/"  # what docs/deploy.md tells demo users
    assert url in (ROOT / "docs" / "deploy.md").read_text()
    resolved = resolved_compose(
        "--profile",
        "demo",
        env={"DEBITWATCH_WEBHOOK_URL": url, "DEBITWATCH_WEBHOOK_SECRET": secret},
    )["services"]
    (endpoint,) = load_endpoints(service_env(resolved["worker"]))
    assert endpoint.url == url and endpoint.secret == secret
    # The receiver checks signatures with the very same secret.
    assert service_env(resolved["webhook-receiver"])["DEBITWATCH_WEBHOOK_SECRET"] == secret


def test_k8s_webhook_endpoints_load_with_the_secret_from_the_secret(tmp_path: Path) -> None:
    load_endpoints = import_module("streams.webhooks.config").load_endpoints
    env = dict(k8s_named("ConfigMap", "debitwatch-env")["data"])
    toml = k8s_named("ConfigMap", "debitwatch-config")["data"]["debitwatch.toml"]
    config = tmp_path / "debitwatch.toml"
    config.write_text(toml)
    env["DEBITWATCH_CONFIG"] = str(config)
    (worker,) = k8s_named("Deployment", "debitwatch-worker")["spec"]["template"]["spec"][
        "containers"
    ]
    from_secret = {
        entry["name"]: a_secret()
        for entry in worker.get("env", [])
        if "secretKeyRef" in entry.get("valueFrom", {})
    }
    endpoints = load_endpoints({**env, **from_secret})
    assert endpoints, "the example configures a webhook receiver"
    # Every endpoint's secret is one the Secret provides (secret_env), none from the file.
    assert {endpoint.secret for endpoint in endpoints} <= set(from_secret.values())
    secret_envs = set(re.findall(r'secret_env\s*=\s*"([^"]+)"', toml))
    assert secret_envs == set(from_secret)


# --- docs/deploy.md -------------------------------------------------------------------------


def documented_commands() -> list[list[str]]:
    """The debitwatch arguments of every `docker compose run ... topics ARGS` and
    `docker run ... debitwatch:TAG ARGS` line in docs/deploy.md's code blocks."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    commands = []
    for line in (line.strip() for block in blocks for line in block.splitlines()):
        if not line.startswith(("docker compose run ", "docker run ")):
            continue
        words = shlex.split(line.split(" #")[0].split(" > ")[0])
        if words[:3] == ["docker", "compose", "run"]:
            rest = words[3:]
            while rest[0].startswith("-"):
                rest = rest[1:]
            assert rest[0] == "topics", line  # the service with the topics' settings
            commands.append(rest[1:])
        elif words[:2] == ["docker", "run"]:
            (image_at,) = [i for i, w in enumerate(words) if w.startswith("debitwatch:")]
            assert words[image_at] == debitwatch_image(), line
            commands.append(words[image_at + 1 :] or json.loads(final_stage("CMD")[0]))
    return commands


def test_commands_in_the_deploy_guide_parse() -> None:
    commands = documented_commands()
    assert len(commands) >= 5
    for argv in commands:
        if argv != ["--help"]:
            cli(argv)
