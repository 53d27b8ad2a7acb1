"""docker/: the Compose stack for users who have Docker, checked without a Docker engine.

Nothing here starts a container. The compose file, the Dockerfile, the Prometheus and Grafana
provisioning and the sloguard/notifier configs are parsed and cross-checked: every service, build
path, mounted file, port and dependency; the broker address shared by Kafka's listeners and
docker/sloguard.yaml; the scrape target against `sloguard run --metrics-port`; and every metric name
the dashboard queries against the metrics the runner exports.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from sloguard.core.spec.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
SLOGUARD_YAML = DOCKER / "sloguard.yaml"
BROKER = "kafka:9092"  # in-network address: docker/sloguard.yaml and the READMEs use it
HOST_BROKER = "localhost:29092"  # the same broker from the host

EXPECTED_SERVICES = {"kafka", "topics", "sloguard", "notifier", "controller", "prometheus", "grafana"}
SLOGUARD_SERVICES = ("topics", "sloguard", "notifier", "controller")  # run the sloguard image

# What `sloguard run --metrics-port` exports (name -> labels); the dashboard may query nothing else.
METRICS = {
    "sloguard_events_in_total": {"topic"},
    "sloguard_outputs_total": {"kind"},
    "sloguard_dead_letters_total": {"model", "reason"},
    "sloguard_sli": {"slo", "model", "segment"},
    "sloguard_budget_remaining": {"slo", "model", "segment", "dimension"},
    "sloguard_burn_rate": {"slo", "model", "segment", "window"},
    "sloguard_alerts_firing": {"slo", "model", "segment", "rule", "severity"},
    "sloguard_consumer_lag": {"topic", "partition"},
}

PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "idelta",
    "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2",
    "max_over_time", "min_over_time", "predict_linear", "quantile_over_time", "rate", "resets", "round",
    "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector",
    # aggregation operators
    "avg", "bottomk", "count", "count_values", "group", "max", "min", "quantile", "stddev", "stdvar", "sum",
    "topk",
}  # fmt: skip
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
                   "group_right", "inf", "nan"}  # fmt: skip


# -- loading -------------------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert cmd, "service has no command"
    return [str(a) for a in cmd] if isinstance(cmd, list) else shlex.split(cmd)


def _option(args: list[str], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` in an argument list."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, source, target) of each volume entry; kind is bind or volume; bind sources resolved."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            kind, source, target = v.get("type", "volume"), str(v.get("source", "")), str(v["target"])
        else:
            parts = str(v).split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            source = str((DOCKER / source).resolve())
        out.append((kind, source, target))
    return out


def _bind_targets(service: dict[str, Any]) -> dict[str, Path]:
    return {target: Path(source) for kind, source, target in _mounts(service) if kind == "bind"}


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _ports(service: dict[str, Any]) -> list[tuple[str, int | None, int]]:
    """(host ip, host port or None, container port) of each published port."""
    out = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            published = p.get("published")
            out.append((str(p.get("host_ip", "")), int(published) if published else None, int(p["target"])))
            continue
        parts = str(p).split("/")[0].split(":")
        if len(parts) == 1:
            out.append(("", None, int(parts[0])))
        elif len(parts) == 2:
            out.append(("", int(parts[0]), int(parts[1])))
        else:
            out.append((":".join(parts[:-2]), int(parts[-2]), int(parts[-1])))
    return out


# -- services, build, mounts, ports, dependencies ------------------------------------------------


def test_every_expected_service_is_defined(services):
    missing = EXPECTED_SERVICES - set(services)
    assert not missing, f"compose.yaml lacks services: {sorted(missing)}"
    for name in SLOGUARD_SERVICES:
        assert services[name].get("build") or services[name].get("image") == services["sloguard"].get("image")


def test_build_context_and_dockerfile_exist(services):
    built = {name: s["build"] for name, s in services.items() if s.get("build")}
    assert set(SLOGUARD_SERVICES) <= set(built), "the sloguard services build the sloguard image"
    for name, build in built.items():
        context = DOCKER / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        dockerfile = context / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"


def _dockerfile_lines() -> list[str]:
    text = (DOCKER / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_copies_only_files_that_exist_and_installs_the_project(services):
    context = DOCKER / services["sloguard"]["build"]["context"]
    lines = _dockerfile_lines()
    copies = [shlex.split(line)[1:] for line in lines if line.upper().startswith("COPY ")]
    sources = [src for args in copies if not any(a.startswith("--from") for a in args) for src in args[:-1]]
    for src in sources:
        assert (context / src).exists(), f"Dockerfile copies {src}, which is not in the build context"
    for needed in ("pyproject.toml", "README.md", "sloguard", "flows", "connectors"):
        assert needed in sources, f"the image needs {needed} to install the project"
    froms = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    assert any("pip install ." in line for line in lines)
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    entry = [line for line in lines if line.upper().startswith("ENTRYPOINT ")]
    assert entry and json.loads(entry[-1].split(None, 1)[1]) == ["sloguard"]


def test_every_bind_mounted_host_path_exists_and_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for kind, source, target in _mounts(service):
            assert target.startswith("/"), f"{name}: mount target {target} must be absolute"
            if kind == "bind":
                assert Path(source).exists(), f"{name}: bind-mounted {source} does not exist"
            elif source:
                assert source in declared, f"{name}: volume {source} is not declared under volumes:"


def test_published_host_ports_are_unique(services):
    seen: dict[int, str] = {}
    for name, service in services.items():
        for _ip, host, _container in _ports(service):
            if host is None:
                continue
            assert host not in seen, f"host port {host} is published by both {seen[host]} and {name}"
            seen[host] = name
    assert {29092, 9108, 8080, 9090, 3000} <= set(seen)


def test_depends_on_references_services_with_the_needed_healthchecks(services):
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            condition = (spec or {}).get("condition", "service_started")
            assert condition in conditions, f"{name} -> {dep}: unknown condition {condition}"
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy; it has no healthcheck"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for name in ("sloguard", "notifier", "controller"):
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["topics"].get("restart") in ("no", None), "a one-shot job must not be restarted"


def test_depends_on_has_no_cycle(services):
    def deps(name: str) -> set[str]:
        d = services[name].get("depends_on") or {}
        return set(d)

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for d in deps(name):
            visit(d, (*path, name))

    for name in services:
        visit(name, ())


# -- the broker address --------------------------------------------------------------------------


def _listeners(value: str) -> dict[str, str]:
    """NAME://host:port,... -> {NAME: host:port}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        out[name] = address
    return out


def test_kafka_advertises_the_broker_address_the_config_uses(services):
    kafka = services["kafka"]
    env = _env(kafka)
    assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"], "KRaft, one node"
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    listeners = _listeners(env["KAFKA_LISTENERS"])
    assert BROKER in advertised.values(), f"kafka must advertise {BROKER}"
    assert HOST_BROKER in advertised.values(), f"kafka must advertise {HOST_BROKER} for the host"
    for name, address in advertised.items():
        port = address.rsplit(":", 1)[1]
        assert listeners.get(name, "").endswith(":" + port), f"advertised {name} has no listener on port {port}"
    assert kafka.get("hostname", "kafka") == "kafka"
    host_port = int(HOST_BROKER.rsplit(":", 1)[1])
    assert any(h == host_port and c == host_port for _ip, h, c in _ports(kafka)), "the host listener is published"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners

    config = _load_yaml(SLOGUARD_YAML)
    assert config["kafka"]["bootstrap_servers"] == BROKER
    assert load_config(SLOGUARD_YAML).kafka["bootstrap_servers"] == BROKER


def test_readmes_give_only_addresses_the_stack_offers():
    docker_readme = (DOCKER / "README.md").read_text(encoding="utf-8")
    assert BROKER in docker_readme and HOST_BROKER in docker_readme
    assert "docker compose -f docker/compose.yaml up" in docker_readme
    for readme in (ROOT / "README.md", DOCKER / "README.md"):
        for address in re.findall(r"\b[\w.-]+:2?9092\b", readme.read_text(encoding="utf-8")):
            assert address in (BROKER, HOST_BROKER), f"{readme.name} mentions broker {address}"


# -- the sloguard services -----------------------------------------------------------------------


def test_sloguard_yaml_is_the_fraud_example_plus_kafka_and_loads():
    docker_config = _load_yaml(SLOGUARD_YAML)
    kafka = docker_config.pop("kafka")
    assert kafka == {"bootstrap_servers": BROKER}
    assert docker_config == _load_yaml(ROOT / "examples" / "fraud.yaml")
    config = load_config(SLOGUARD_YAML)
    assert {s.name for s in config.slos} >= {"fraud-availability", "fraud-latency"}


def test_sloguard_commands_use_config_files_that_are_mounted(services):
    for name in SLOGUARD_SERVICES:
        service = services[name]
        args = _command(service)
        mounted = _bind_targets(service)
        for flag in ("--config", "--notifier-config"):
            path = _option(args, flag)
            if path is None:
                continue
            assert path in mounted, f"{name}: {flag} {path} is not mounted into the container"
            assert mounted[path].is_file(), f"{name}: {mounted[path]} does not exist"
        assert _option(args, "--config") == "/etc/sloguard/sloguard.yaml"
        assert mounted["/etc/sloguard/sloguard.yaml"] == SLOGUARD_YAML.resolve()


def test_the_expected_commands_and_flags(services):
    assert _command(services["topics"])[:2] == ["topics", "create"]
    assert _option(_command(services["topics"]), "--partitions") == "3"
    run = _command(services["sloguard"])
    assert run[0] == "run"
    assert _option(run, "--metrics-port") and _option(run, "--recovery-dir")
    assert _command(services["notifier"])[0] == "notifier"
    assert _command(services["controller"])[0] == "controller"


def test_state_directories_are_on_named_volumes(services):
    """Recovery snapshots, the notifier's ledger and the controller's state survive a container restart."""
    wanted = {
        "sloguard": [_option(_command(services["sloguard"]), "--recovery-dir")],
        "controller": [_option(_command(services["controller"]), f) for f in ("--state", "--audit-log")],
        "notifier": [_load_yaml(DOCKER / "notifier.yaml")["notifier"]["state_file"]],
    }
    for name, paths in wanted.items():
        volumes = [t for kind, _s, t in _mounts(services[name]) if kind == "volume"]
        for path in paths:
            assert path and any(_under(path, v) for v in volumes), f"{name}: {path} is not on a named volume"


def _cli_parser() -> argparse.ArgumentParser:
    from sloguard.apps.cli import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


@pytest.mark.parametrize("name", SLOGUARD_SERVICES)
def test_service_command_is_accepted_by_the_cli(services, name):
    """The compose command parses with the real `sloguard` parser (once that subcommand exists)."""
    args = _command(services[name])
    parser = _cli_parser()
    if args[0] not in _subcommands(parser):
        if args[0] not in ("notifier", "controller"):
            pytest.skip(f"`sloguard {args[0]}` is not in the CLI yet")
        module = pytest.importorskip(f"connectors.{args[0]}")
        parser = argparse.ArgumentParser(prog="sloguard")
        module.add_parser(parser.add_subparsers())
    try:
        parser.parse_args(args)
    except SystemExit as e:
        pytest.fail(f"`sloguard {shlex.join(args)}` is rejected by the CLI (exit {e.code})")


def test_metrics_port_is_the_prometheus_target(services):
    port = int(_option(_command(services["sloguard"]), "--metrics-port"))
    assert _option(_command(services["sloguard"]), "--metrics-address") == "0.0.0.0"  # reachable from prometheus
    prometheus = services["prometheus"]
    config_path = _option(_command(prometheus), "--config.file")
    mounted = _bind_targets(prometheus)
    assert config_path in mounted and mounted[config_path] == (DOCKER / "prometheus" / "prometheus.yml").resolve()
    scrape = _load_yaml(mounted[config_path])
    targets = {t for job in scrape["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert f"sloguard:{port}" in targets
    assert any(c == port for _ip, _h, c in _ports(services["sloguard"])), "the metrics port is published"
    assert str(port) in json.dumps(services["sloguard"]["healthcheck"]["test"])


def test_controller_listens_on_its_published_port_with_a_token_from_the_environment(services):
    controller = services["controller"]
    listen = _option(_command(controller), "--listen")
    host, _, port = listen.rpartition(":")
    assert host in ("0.0.0.0", "::", ""), "the gate must listen on all interfaces inside the container"
    assert [c for _ip, _h, c in _ports(controller)] == [int(port)] == [8080]
    assert str(port) in json.dumps(controller["healthcheck"]["test"])
    assert _env(controller)["SLOGUARD_GATE_TOKEN"].startswith("${SLOGUARD_GATE_TOKEN")
    controller_module = pytest.importorskip("sloguard.connectors.controller_settings")
    _config, _spec, settings, kafka = controller_module.load_controller_config(
        SLOGUARD_YAML, env={"SLOGUARD_GATE_TOKEN": "t0ken"}
    )
    assert settings.tokens == ("t0ken",) and kafka.bootstrap_servers == BROKER


def test_notifier_routes_cover_the_owners_and_their_webhooks_come_from_the_environment(services):
    notifier = services["notifier"]
    routes = _load_yaml(DOCKER / "notifier.yaml")["notifier"]["routes"]
    owners = {o["route"] for o in _load_yaml(SLOGUARD_YAML)["owners"].values()}
    assert owners | {"default"} <= set(routes), "every owner's route (and default) needs a webhook"
    variables = {t["webhook_env"] for spec in routes.values() for t in (spec if isinstance(spec, list) else [spec])}
    env = _env(notifier)
    example = (DOCKER / ".env.example").read_text(encoding="utf-8")
    for var in variables:
        assert env.get(var, "").startswith("${" + var), f"compose must pass {var} to the notifier from .env"
        assert re.search(rf"^{var}=\s*$", example, re.M), f".env.example must document {var} (empty)"
    notifier_module = pytest.importorskip("sloguard.connectors.notifier")
    cfg = notifier_module.load_notifier_config(SLOGUARD_YAML, notifier_path=DOCKER / "notifier.yaml", env={})
    assert cfg.kafka.bootstrap_servers == BROKER
    senders, _ = notifier_module.build_senders(
        cfg.settings, env={v: f"https://hooks.slack.com/services/T/B/{v}" for v in variables}
    )
    assert set(senders) == set(routes)


def test_no_secret_is_hard_coded(services):
    secretish = re.compile(r"WEBHOOK|TOKEN|PASSWORD|SECRET", re.I)
    for name, service in services.items():
        for key, value in _env(service).items():
            if secretish.search(key):
                assert value.startswith("${"), f"{name}: {key} must come from the environment (.env), not compose"
    assert "hooks.slack.com" not in COMPOSE_FILE.read_text(encoding="utf-8")
    assert ".env" in (DOCKER / ".gitignore").read_text(encoding="utf-8").split()


# -- Grafana -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads((DOCKER / "grafana" / "dashboards" / "sloguard.json").read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def test_grafana_provisions_the_datasource_and_the_dashboard(services, dashboard):
    grafana = services["grafana"]
    mounted = _bind_targets(grafana)
    provisioning = mounted["/etc/grafana/provisioning"]
    assert provisioning == (DOCKER / "grafana" / "provisioning").resolve()
    datasources = _load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    uids = {d["uid"] for d in datasources}
    prometheus_port = next(c for _ip, _h, c in _ports(services["prometheus"]))
    assert any(d["type"] == "prometheus" and d["url"] == f"http://prometheus:{prometheus_port}" for d in datasources)

    providers = _load_yaml(provisioning / "dashboards" / "dashboards.yaml")["providers"]
    paths = {p["options"]["path"] for p in providers}
    dash_dirs = [mounted[p] for p in paths if p in mounted]
    assert dash_dirs and any((d / "sloguard.json").is_file() for d in dash_dirs), "dashboard dir is not mounted"
    home = _env(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert any(_under(home, p) for p in paths)

    refs = []
    for p in _panels(dashboard):
        refs.append(p.get("datasource"))
        refs.extend(t.get("datasource") for t in p.get("targets", []))
    refs.extend(v.get("datasource") for v in dashboard["templating"]["list"])
    for ref in refs:
        if ref is None or (isinstance(ref, dict) and ref.get("type") == "grafana"):
            continue
        uid = ref["uid"] if isinstance(ref, dict) else ref
        assert uid in uids, f"the dashboard uses datasource {uid!r}, which is not provisioned ({sorted(uids)})"


def test_dashboard_panels_are_well_formed(dashboard):
    assert dashboard["uid"] and dashboard["title"]
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for p in panels:
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] != "row":
            assert p.get("targets"), f"panel {p['title']!r} has no query"
        if p.get("repeat"):
            assert p["repeat"] in variables
    for v in variables:
        assert re.fullmatch(r"[a-z_]+", v)
    cells: dict[tuple[int, int], str] = {}  # no two panels on the same grid cell (before repeats expand)
    for p in panels:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panels {cells[(x, y)]!r} and {p['title']!r} overlap"
                cells[(x, y)] = p["title"]


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression selects; raises AssertionError on a function PromQL does not have."""
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # string literals (label values, regexes)
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers, including Grafana $variables
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors, including $__rate_interval / $__range
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w:$.])[A-Za-z_:][\w:]*", s):
        word = m.group()
        if s[m.end() :].lstrip().startswith("("):
            assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word!r} in {expr!r}"
        elif word.lower() not in PROMQL_KEYWORDS:
            names.add(word)
    return names


def test_promql_metric_name_extraction():
    assert promql_metric_names('sum by (slo, segment) (rate(a_total{x=~"$x", y="b c"}[$__rate_interval]))') == {
        "a_total"
    }
    assert promql_metric_names("sum(rate(a[5m])) / clamp_min(sum(b offset 1h), 1e-9) > 14.4 or vector(0)") == {
        "a",
        "b",
    }
    with pytest.raises(AssertionError):
        promql_metric_names("no_such_function(a)")


def _label_matchers(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched) of each `metric{...}` selector in an expression."""
    return [
        (m.group(1), set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", m.group(2))))
        for m in re.finditer(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr)
    ]


def test_dashboard_queries_only_metrics_the_runner_exports(dashboard):
    used: set[str] = set()
    for p in _panels(dashboard):
        for t in p.get("targets", []):
            names = promql_metric_names(t["expr"])
            assert names, f"panel {p['title']!r}: {t['expr']!r} selects no metric"
            unknown = names - set(METRICS)
            assert not unknown, f"panel {p['title']!r} queries {sorted(unknown)}, not exported by sloguard run"
            for metric, labels in _label_matchers(t["expr"]):
                assert labels <= METRICS[metric], f"{metric} has no label(s) {sorted(labels - METRICS[metric])}"
            used |= names
    for v in dashboard["templating"]["list"]:
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert m, f"variable {v['name']}: unexpected query {query!r}"
        (metric,) = promql_metric_names(m.group(1))
        assert metric in METRICS and m.group(2) in METRICS[metric]
        for name, labels in _label_matchers(m.group(1)):
            assert labels <= METRICS[name]
    assert used == set(METRICS), f"metrics without a panel: {sorted(set(METRICS) - used)}"
