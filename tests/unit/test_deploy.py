"""The production deployment, validated as far as a machine without Docker or Kubernetes can:
docker-compose.yml against the Compose Specification's schema, the Dockerfile with hadolint, the
Kustomize base rendered and checked against the Kubernetes schemas, and every setting a
deployment must decide set for every service in both."""

import importlib
import json
import pkgutil
import re
import shutil
import subprocess
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
K8S_BASE = ROOT / "deploy" / "k8s" / "base"
K8S_MONITORING = ROOT / "deploy" / "k8s" / "monitoring"
K8S_SCRAPE = ROOT / "deploy" / "k8s" / "prometheus" / "scrape.yml"
KUBERNETES_VERSION = "1.33.0"
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/__main__.py"))
# Services with a database of their own (each has migrations and its own role).
DB_SERVICES = [s for s in SERVICES if (ROOT / "services" / s / "migrations").is_dir()]
# What every deployment decides whatever the defaults: production mode and Apache Kafka's
# idempotent producer (off by default for the local broker).
ALWAYS = {"CARELOOP_ENV", "CARELOOP_KAFKA_IDEMPOTENT", "CARELOOP_AGENTS_FILE"}


def tool(name: str) -> str:
    """A command-line tool from the virtualenv (a pinned PyPI package) or Debian's packages;
    missing is a failure: `bin/careloop test` installs them."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}:/usr/bin")
    if found is None:
        pytest.fail(f"{name} is missing: run bin/careloop test, which installs it")
    return found


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def rendered_manifests() -> list[dict[str, Any]]:
    """The Kustomize base as `kubectl kustomize` renders it, for the fields it uses: its
    resources, with the common labels added and the image names replaced."""
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "labels", "images", "resources"}, (
        "the base uses a Kustomize feature this rendering does not apply"
    )
    labels = {k: v for entry in kustomization.get("labels", []) for k, v in entry["pairs"].items()}
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S_BASE / name).read_text()):
            doc["metadata"].setdefault("labels", {}).update(labels)
            for container in containers(doc):
                container["image"] = images.get(container["image"], container["image"])
            docs.append(doc)
    return docs


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] != "Deployment":
        return []
    pod = doc["spec"]["template"]["spec"]
    found: list[dict[str, Any]] = [*pod.get("initContainers", []), *pod["containers"]]
    return found


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered_manifests() if d["kind"] == kind}


@cache
def settings_read_by(service: str) -> dict[str, FieldInfo | None]:
    """Every environment variable `service` reads, with its field: its own settings classes
    (anywhere under services/<service>), the shared ones, and the signing secrets where the
    service verifies signatures."""
    package = importlib.import_module(f"services.{service}")
    for module in pkgutil.walk_packages(package.__path__, f"services.{service}."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    source = "\n".join(p.read_text() for p in (ROOT / "services" / service).rglob("*.py"))
    classes: list[type[BaseSettings]] = [CommonSettings]
    if re.search(r"shared\.signing|from shared import signing", source):
        classes.append(importlib.import_module("shared.signing").SigningSettings)
    classes += [
        c
        for c in _subclasses(BaseSettings)
        if c.__module__.startswith(f"services.{service}.") and c is not CommonSettings
    ]
    read: dict[str, FieldInfo | None] = {}
    for cls in classes:
        prefix = cls.model_config.get("env_prefix", "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            env = getattr(alias, "choices", [alias])[0] if alias else f"{prefix}{name}".upper()
            read[str(env)] = field
    if service in DB_SERVICES:
        read[f"CARELOOP_{service.upper()}_PG_DSN"] = None
    return read


def _subclasses(cls: type[BaseSettings]) -> list[type[BaseSettings]]:
    return [s for sub in cls.__subclasses__() for s in (sub, *_subclasses(sub))]


def must_decide(service: str) -> set[str]:
    """The settings of `service` no deployment can leave at their defaults: an address on one
    machine (loopback), a secret whose default is a local demo value, the HTTP port (8080 in a
    container), the service's own database; and ALWAYS."""
    decide = set(ALWAYS)
    for env, field in settings_read_by(service).items():
        if field is None:
            decide.add(env)
            continue
        default = field.default
        text = default.get_secret_value() if isinstance(default, SecretStr) else str(default)
        local = re.search(r"127\.0\.0\.1|localhost", text) is not None
        demo_secret = "SecretStr" in str(field.annotation) and default is not None
        if local or demo_secret or env.endswith("_HTTP_PORT"):
            decide.add(env)
    return decide - {"CARELOOP_PG_DSN"}  # each service connects with its own DSN


def compose_env(service: str) -> dict[str, str]:
    env: dict[str, str] = compose()["services"][service]["environment"]
    return env


def k8s_env(service: str) -> set[str]:
    """What the service's container gets: the ConfigMaps it loads whole and its own env."""
    configmaps = by_kind("ConfigMap")
    (container,) = by_kind("Deployment")[f"careloop-{service}"]["spec"]["template"]["spec"][
        "containers"
    ]
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(configmaps[source["configMapRef"]["name"]]["data"])
    return names


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert errors == []


def test_compose_runs_every_service_from_the_one_image_and_the_whole_stack_beside_them() -> None:
    services = compose()["services"]
    for name in SERVICES:
        assert services[name]["build"] == {"context": ".", "target": "runtime"}
        assert services[name]["command"] == ["python", "-m", f"services.{name}"]
        assert "container_name" not in services[name], f"{name} could not scale"
    assert {
        "kafka",
        "postgres",
        "redis",
        "prometheus",
        "alertmanager",
        "grafana",
        "mailpit",
    } <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert [s for s, d in services.items() if "kafka-cluster" in d.get("profiles", [])] == [
        "kafka-2",
        "kafka-3",
    ]


def test_compose_postgres_initialises_a_role_for_every_service_with_a_database() -> None:
    """postgres-init.sh stops (`set -eu`, `${var:?}`) at the first password the postgres
    container lacks, leaving later roles and the REVOKE hardening undone for good: the volume
    is initialised once. So its loop and the container's environment cover every such service."""
    script = (ROOT / "deploy" / "compose" / "postgres-init.sh").read_text()
    (loop,) = re.findall(r"^for service in ([a-z ]+); do$", script, re.M)
    assert sorted(loop.split()) == DB_SERVICES
    postgres = compose()["services"]["postgres"]["environment"]
    example = (ROOT / "deploy" / "compose" / "example.env").read_text()
    for service in DB_SERVICES:
        var = f"CARELOOP_PG_{service.upper()}_PASSWORD"
        assert postgres.get(var) == f"${{{var}:?}}", f"postgres lacks {var}"
        assert re.search(rf"^{var}=$", example, re.M), f"example.env lacks {var}"
        assert (
            f"careloop_{service}:${{{var}:?}}@"
            in compose_env(service)[f"CARELOOP_{service.upper()}_PG_DSN"]
        )


def test_compose_prometheus_scrapes_every_service_and_both_configs_load() -> None:
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    assert sorted(job["job_name"] for job in config["scrape_configs"]) == SERVICES
    checked = subprocess.run(
        [tool("promtool"), "check", "config", "--syntax-only", "deploy/compose/prometheus.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    checked = subprocess.run(
        [tool("amtool"), "check-config", "deploy/compose/alertmanager.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dockerfile_passes_hadolint() -> None:
    linted = subprocess.run(
        [tool("hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_dockerfile_runs_as_a_user_with_a_health_check_on_an_exact_base() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    bases = [
        line.split()[1] for line in lines if line.startswith("FROM ") and ":" in line.split()[1]
    ]
    assert bases and all(re.search(r":\d+\.\d+\.\d+|@sha256:", b) for b in bases), bases
    runtime = lines[next(i for i, line in enumerate(lines) if line.endswith("AS runtime")) :]
    assert any(line.startswith("USER 10001") for line in runtime)
    assert any(line.startswith("HEALTHCHECK") for line in runtime)


# What bin/careloop's ensure_packages installs that the runtime image does without: the local
# stand-ins for compose's own containers (Redis, Prometheus, Alertmanager), the IMAP mailbox of
# the local run, and the browser the tests drive.
NOT_IN_THE_IMAGE = {
    "redis-server",
    "dovecot-imapd",
    "prometheus",
    "prometheus-alertmanager",
    "chromium",
}


def test_the_runtime_image_installs_the_debian_packages_the_services_need() -> None:
    """metrics' reports need Pango and a CJK font (WeasyPrint, Chinese); without them every
    scheduled report fails to render in a container, as it would on a machine bin/careloop had
    not prepared."""
    careloop = (ROOT / "bin" / "careloop").read_text()
    body = re.search(r"^ensure_packages\(\) \{$(.*?)^\}$", careloop, re.M | re.S)
    assert body is not None
    ensured = {p for group in re.findall(r"missing\+=\(([^)]*)\)", body[1]) for p in group.split()}
    needed = ensured - NOT_IN_THE_IMAGE
    assert {"libpango-1.0-0", "libpangoft2-1.0-0", "fonts-wqy-microhei"} <= needed
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    installs = re.findall(r"apt-get install (.*?)(?:&&|$)", runtime, re.M)
    installed = {word.split("=")[0] for line in installs for word in line.split()}
    assert sorted(needed - installed) == []


def test_every_kubernetes_manifest_follows_its_schema() -> None:
    """Every built-in kind, strictly (unknown fields fail). KEDA's CRD schema is not packaged
    for Python; its ScaledObjects are checked against the Deployments below."""
    docs = [d for d in rendered_manifests() if not d["apiVersion"].startswith("keda.sh/")]
    assert {d["kind"] for d in docs} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_service_has_a_deployment_with_probes_resources_a_pdb_and_a_scaler() -> None:
    deployments, pdbs, scalers = (
        by_kind("Deployment"),
        by_kind("PodDisruptionBudget"),
        by_kind("ScaledObject"),
    )
    services = by_kind("Service")
    for name in SERVICES:
        key = f"careloop-{name}"
        pod = deployments[key]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pdbs[key]["spec"]["selector"] == deployments[key]["spec"]["selector"]
        assert (
            services[key]["spec"]["selector"] == deployments[key]["spec"]["selector"]["matchLabels"]
        )
        assert scalers[key]["spec"]["scaleTargetRef"]["name"] == key


def metrics_token_secret(service: str) -> dict[str, str]:
    """The Secret key the service's container reads CARELOOP_METRICS_TOKEN from."""
    (container,) = by_kind("Deployment")[f"careloop-{service}"]["spec"]["template"]["spec"][
        "containers"
    ]
    (token,) = [e for e in container["env"] if e["name"] == "CARELOOP_METRICS_TOKEN"]
    ref: dict[str, str] = token["valueFrom"]["secretKeyRef"]
    return ref


def test_the_pod_monitor_scrapes_every_service_as_the_job_of_its_name() -> None:
    """careloop's alerts and dashboards select job="<service>": the PodMonitor's job label,
    selector, port and token match every Deployment. Like KEDA's, the Prometheus Operator's CRD
    schema is not packaged for Python without a pytest plugin of its own (cloudcoil's), so
    its fields are checked here only."""
    kustomization = yaml.safe_load((K8S_MONITORING / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../base", "podmonitor.yaml"]
    doc = yaml.safe_load((K8S_MONITORING / "podmonitor.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert set(doc["spec"]) == {"jobLabel", "selector", "podMetricsEndpoints"}
    spec = doc["spec"]
    assert spec["jobLabel"] == "app.kubernetes.io/name"
    (selected,) = spec["selector"]["matchExpressions"]
    assert (selected["key"], selected["operator"]) == ("app.kubernetes.io/name", "In")
    assert sorted(selected["values"]) == SERVICES
    (endpoint,) = spec["podMetricsEndpoints"]
    for service in SERVICES:
        pod = by_kind("Deployment")[f"careloop-{service}"]["spec"]["template"]
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == service
        (container,) = pod["spec"]["containers"]
        assert endpoint["port"] in {p["name"] for p in container["ports"]}
        assert endpoint["authorization"]["credentials"] == metrics_token_secret(service)


def test_the_plain_prometheus_scrape_job_names_each_service_as_its_job(tmp_path: Path) -> None:
    """Without the Operator: deploy/k8s/prometheus/scrape.yml keeps careloop's annotated pods
    and sets job from app.kubernetes.io/name. Debian's promtool is built without Kubernetes
    discovery, so promtool checks the job (relabelling, authorization) with its discovery
    swapped for a static target; the keep rule's regex is then tried on each service here."""
    config = yaml.safe_load(K8S_SCRAPE.read_text())
    (job,) = config["scrape_configs"]
    assert [sd["role"] for sd in job.pop("kubernetes_sd_configs")] == ["pod"]
    job["static_configs"] = [{"targets": ["10.0.0.1:8080"]}]
    checked_copy = tmp_path / "scrape.yml"
    checked_copy.write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        [tool("promtool"), "check", "config", "--syntax-only", str(checked_copy)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    keep, port, *rest = job["relabel_configs"]
    assert keep["action"] == "keep" and keep["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name",
    ]
    for service in SERVICES:
        pod = by_kind("Deployment")[f"careloop-{service}"]["spec"]["template"]["metadata"]
        values = f"{pod['annotations']['prometheus.io/scrape']};{pod['labels']['app.kubernetes.io/name']}"
        assert re.fullmatch(keep["regex"], values), values
    assert not re.fullmatch(keep["regex"], "true;postgres")
    assert not re.fullmatch(keep["regex"], "false;desk")
    assert port == {
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "http",
        "action": "keep",
    }
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
        "target_label": "job",
    } in rest


def test_consumers_scale_on_their_own_groups_lag_up_to_the_partitions() -> None:
    partitions = int(by_kind("ConfigMap")["careloop-config"]["data"]["CARELOOP_KAFKA_PARTITIONS"])
    kafka = {
        name: scaler
        for name, scaler in by_kind("ScaledObject").items()
        if scaler["spec"]["triggers"][0]["type"] == "kafka"
    }
    assert sorted(kafka) == [f"careloop-{s}" for s in SERVICES if s != "intake"]
    for name, scaler in kafka.items():
        service = name.removeprefix("careloop-")
        (trigger,) = scaler["spec"]["triggers"]
        assert trigger["metadata"]["consumerGroup"] == service  # shared.service: group = service
        assert trigger["metadata"]["bootstrapServersFromEnv"] in k8s_env(service)
        assert scaler["spec"]["maxReplicaCount"] <= partitions


def test_db_services_migrate_in_an_init_container_before_they_start() -> None:
    config = by_kind("ConfigMap")["careloop-config"]["data"]
    assert config["CARELOOP_MIGRATE_ON_START"] == "false"
    for name in DB_SERVICES:
        (init,) = by_kind("Deployment")[f"careloop-{name}"]["spec"]["template"]["spec"][
            "initContainers"
        ]
        assert init["command"] == ["python", "-m", "shared.migrate", name]
        assert f"CARELOOP_{name.upper()}_PG_DSN" in {e["name"] for e in init["env"]}


@pytest.mark.parametrize("service", SERVICES)
def test_every_setting_a_deployment_must_decide_is_set_in_compose_and_in_k8s(service: str) -> None:
    decide = must_decide(service)
    assert not decide - set(compose_env(service)), "missing in docker-compose.yml"
    assert not decide - k8s_env(service), "missing in deploy/k8s"


def test_compose_and_k8s_set_only_settings_the_services_read() -> None:
    read = set().union(*(settings_read_by(s) for s in SERVICES))
    compose_set = {k for s in SERVICES for k in compose_env(s)}
    k8s_set = set().union(*(k8s_env(s) for s in SERVICES))
    assert sorted(compose_set - read) == []
    assert sorted(k8s_set - read) == []


def test_the_idempotent_producer_is_on_for_apache_kafka() -> None:
    config = by_kind("ConfigMap")["careloop-config"]["data"]
    assert config["CARELOOP_KAFKA_IDEMPOTENT"] == "true"
    for service in SERVICES:
        assert compose_env(service)["CARELOOP_KAFKA_IDEMPOTENT"] == "true"


def test_the_grafana_stage_builds_the_dashboards_it_copies(tmp_path: Path) -> None:
    """The Dockerfile's dashboards stage, run here: the generator takes its arguments and writes
    what the grafana stage copies, with the provider pointing where the dashboards land."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (run,) = re.findall(r"^RUN python -m deploy\.grafana build (.*)$", dockerfile, re.M)
    out, *options = run.split()
    built = subprocess.run(
        [sys.executable, "-m", "deploy.grafana", "build", str(tmp_path), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    copies = dict(re.findall(rf"^COPY --from=dashboards {out}/(\S+) (\S+)$", dockerfile, re.M))
    assert set(copies) == {"provisioning", "dashboards"}
    assert list((tmp_path / "dashboards").glob("*.json"))
    (provider_file,) = (tmp_path / "provisioning" / "dashboards").glob("*.yaml")
    (provider,) = yaml.safe_load(provider_file.read_text())["providers"]
    assert provider["options"]["path"] == copies["dashboards"]
