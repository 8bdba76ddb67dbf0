"""docker-compose.yaml, checked without a Docker engine.

The file must parse and match the Compose Specification's schema; every service, volume and network it
names must exist; every host path it mounts or builds from must exist in the repository; it must hold no
credentials; and the values that tie the services together (the aws_default connection, the execution
API URL, the database URL, the shared config volume) must agree with each other and with Airflow.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from tests.support import docker_compose as dc
from tests.support.moto_server import ACCOUNT_ID

REPO = dc.REPO
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
# Every service that runs the extended Airflow image and so talks to the metadata database.
AIRFLOW_IMAGE_SERVICES = [*AIRFLOW_COMPONENTS, "airflow-init", "airflow-cli", "moto-setup"]
AWS_SERVICES = [*AIRFLOW_IMAGE_SERVICES, "worker"]
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"


def _schema() -> dict[str, Any]:
    return json.loads(dc.COMPOSE_SCHEMA.read_text(encoding="utf-8"))


# --- the file and the Compose Specification --------------------------------------------------------------


def test_compose_file_parses_into_the_expected_services(services: dict[str, Any]) -> None:
    expected = {*AIRFLOW_IMAGE_SERVICES, "postgres", "moto", "worker"}
    assert set(services) == expected
    assert "redis" not in services  # LocalExecutor: no Celery broker


def test_schema_is_the_vendored_compose_specification() -> None:
    digest = hashlib.sha256(dc.COMPOSE_SCHEMA.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, "compose-spec.json changed: update tests/docker/schemas/README.md too"


@pytest.mark.parametrize("interpolated", [True, False], ids=["interpolated", "raw"])
def test_compose_file_matches_the_compose_specification(interpolated: bool) -> None:
    data = dc.load() if interpolated else dc.load_raw()
    errors = sorted(
        jsonschema.Draft202012Validator(_schema()).iter_errors(data), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("services", "moto", "imagee"), "typo"),
        (("services", "moto", "ports"), "5000:5000"),
        (("services", "postgres", "depends_on"), 42),
    ],
)
def test_schema_check_catches_a_broken_file(
    compose: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    broken = copy.deepcopy(compose)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(jsonschema.Draft202012Validator(_schema()).iter_errors(broken))


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"SET": "value", "EMPTY": ""}
    cases = {
        "${SET}": "value",
        "$SET/x": "value/x",
        "${UNSET:-fallback}": "fallback",
        "${EMPTY:-fallback}": "fallback",
        "${EMPTY-fallback}": "",
        "${UNSET-fallback}": "fallback",
        "${SET:+alt}": "alt",
        "${UNSET:+alt}": "",
        "${UNSET:-${SET}}": "value",
        "$${HOSTNAME}": "${HOSTNAME}",
        "a $$ b": "a $ b",
    }
    assert {text: dc.interpolate(text, env) for text in cases} == cases
    with pytest.raises(dc.ComposeReadError):
        dc.interpolate("${UNSET:?set it}", env)
    with pytest.raises(dc.ComposeReadError):
        dc.interpolate("${unclosed", env)


# --- references and paths ----------------------------------------------------------------------------------


def test_every_referenced_service_volume_and_network_exists(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    networks = set(compose.get("networks") or {}) | {"default"}
    missing = []
    for name, service in services.items():
        referenced = set(dc.depends_on(service))
        referenced |= {str(link).split(":")[0] for link in service.get("links") or []}
        if "extends" in service and "file" not in service["extends"]:
            referenced.add(service["extends"]["service"])
        for item in service.get("volumes_from") or []:
            parts = str(item).split(":")
            if parts[0] != "container":
                referenced.add(parts[1] if parts[0] == "service" else parts[0])
        for field in ("network_mode", "pid", "ipc"):
            value = str(service.get(field) or "")
            if value.startswith("service:"):
                referenced.add(value.removeprefix("service:"))
        missing += [f"{name} -> service {ref}" for ref in referenced - set(services)]
        for mount in dc.mounts(service):
            if mount.kind == "volume" and mount.source and mount.source not in volumes:
                missing.append(f"{name} -> volume {mount.source}")
        missing += [f"{name} -> network {net}" for net in set(service.get("networks") or []) - networks]
    assert not missing, missing


def test_every_dependency_condition_is_satisfiable(services: dict[str, Any]) -> None:
    """``service_healthy`` needs a healthcheck; ``service_completed_successfully`` a one-shot service."""
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        if not isinstance(depends, dict):
            continue
        for target, spec in depends.items():
            condition = spec.get("condition", "service_started")
            if condition == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name} waits for {target} to be healthy, but it has no healthcheck")
            if condition == "service_completed_successfully" and services[target].get("restart") == "always":
                problems.append(f"{name} waits for {target} to exit, but it restarts always")
            if services[target].get("profiles") and not set(services[target]["profiles"]) <= set(
                service.get("profiles") or []
            ):
                problems.append(f"{name} depends on {target}, which only starts with a profile")
    assert not problems, problems


def test_every_host_path_exists_in_the_repository(services: dict[str, Any]) -> None:
    """Bind mounts, build contexts, Dockerfiles and env files (worker/Dockerfile included)."""
    missing = []
    for name, service in services.items():
        for mount in dc.mounts(service):
            if mount.kind == "bind" and not (REPO / mount.source).exists():
                missing.append(f"{name}: mount source {mount.source}")
        build = service.get("build")
        if build is not None:
            context = REPO / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            if not context.is_dir():
                missing.append(f"{name}: build context {context.relative_to(REPO)}")
            elif not (context / dockerfile).is_file():
                missing.append(f"{name}: Dockerfile {(context / dockerfile).relative_to(REPO)}")
        for path, required in dc.env_files(service):
            if required and not (REPO / path).is_file():
                missing.append(f"{name}: env_file {path}")
    assert not missing, missing


def test_airflow_mounts_mirror_the_repository_read_only(services: dict[str, Any]) -> None:
    """/opt/airflow stands for the repository root: faceidx finds infra/ beside plugins/ there too."""
    from faceidx.infra.catalog import default_spec_dir

    spec_dir = default_spec_dir().resolve().relative_to(REPO).as_posix()
    for name in AIRFLOW_IMAGE_SERVICES:
        binds = {m.source: m for m in dc.mounts(services[name]) if m.kind == "bind"}
        for folder in ("dags", "plugins", spec_dir):
            mount = binds.get(f"./{folder}")
            assert mount is not None, f"{name} does not mount ./{folder}"
            assert mount.target == f"/opt/airflow/{folder}", f"{name}: ./{folder} -> {mount.target}"
            assert mount.read_only, f"{name} may write into the checkout at {mount.target}"


def test_airflow_services_share_the_generated_config_and_the_logs(compose: dict[str, Any]) -> None:
    """One airflow.cfg (JWT secret, fernet key) for every process that signs tokens or reads Variables."""
    services = compose["services"]
    for name in AIRFLOW_IMAGE_SERVICES:
        config_file = dc.environment(services[name])["AIRFLOW_CONFIG"] or ""
        by_target = {m.target: m for m in dc.mounts(services[name])}
        config_mount = by_target[str(Path(config_file).parent)]
        assert (config_mount.kind, config_mount.source) == ("volume", "airflow-config"), name
        assert (by_target["/opt/airflow/logs"].kind, by_target["/opt/airflow/logs"].source) == (
            "volume",
            "airflow-logs",
        ), name
    assert {"airflow-config", "airflow-logs", "postgres-db-volume"} <= set(compose["volumes"])


# --- credentials -----------------------------------------------------------------------------------------


def test_compose_file_holds_no_credentials(raw_compose: dict[str, Any]) -> None:
    assert dc.credential_literals(raw_compose) == []


def test_compose_file_sets_no_airflow_variables(raw_compose: dict[str, Any]) -> None:
    """An AIRFLOW_VAR_* env var would shadow what face_infra_bootstrap and moto-setup store."""
    for name, service in raw_compose["services"].items():
        assert not [key for key in dc.environment(service) if key.startswith("AIRFLOW_VAR_")], name


@pytest.mark.parametrize(
    ("service", "finding"),
    [
        ({"environment": {"AWS_SECRET_ACCESS_KEY": "abc"}}, "AWS credentials belong in an env file"),
        ({"environment": ["AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-}"]}, "AWS credentials belong"),
        ({"environment": {"POSTGRES_PASSWORD": "airflow"}}, "a literal secret"),
        ({"environment": {"X": "postgresql://airflow:airflow@postgres/airflow"}}, "a literal password"),
        # built at run time, so no key-shaped literal sits in the repository
        ({"command": "run --key " + "AKIA" + "ABCDEFGHIJKLMNOP"}, "an AWS access key id"),
        (
            {"environment": {"AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws", "login": "AKIA"}'}},
            "the connection carries login",
        ),
        (
            {"environment": {"AIRFLOW_CONN_X": "aws://key:secret@/?region_name=us-east-1"}},
            "a literal password",
        ),
    ],
)
def test_credential_check_catches_literals(service: dict[str, Any], finding: str) -> None:
    problems = dc.credential_literals({"services": {"svc": service}})
    assert any(finding in problem for problem in problems), problems


@pytest.mark.parametrize(
    "service",
    [
        {"environment": {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:-airflow}"}},
        {"environment": {"X": "postgresql://${U:-a}:${P:-a}@postgres/db"}},
        {"environment": {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": "/opt/p.json"}},
        {"env_file": ["docker/aws-moto.env"]},
    ],
)
def test_credential_check_accepts_interpolated_values(service: dict[str, Any]) -> None:
    assert dc.credential_literals({"services": {"svc": service}}) == []


def test_aws_env_file_holds_placeholders_only(moto_env: dict[str, str]) -> None:
    assert set(moto_env) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AIRFLOW_CONN_AWS_DEFAULT",
    }
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "placeholder" in moto_env[key]
        assert not dc.AWS_KEY_ID.search(moto_env[key])


# --- AWS: the connection, moto and the worker --------------------------------------------------------------


def _moto_port(services: dict[str, Any]) -> int:
    return int(dc.environment(services["moto"]).get("MOTO_PORT") or 5000)


def test_aws_default_connection_points_at_the_moto_service(
    services: dict[str, Any], moto_env: dict[str, str]
) -> None:
    from airflow.models.connection import Connection
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    connection = Connection.from_json(moto_env["AIRFLOW_CONN_AWS_DEFAULT"], conn_id="aws_default")
    wrapper = AwsConnectionWrapper(conn=connection)
    endpoint = urlsplit(wrapper.endpoint_url or "")
    assert connection.conn_type == "aws"
    assert not connection.login
    assert not connection.password
    assert endpoint.hostname == "moto"
    assert endpoint.port == _moto_port(services)
    assert wrapper.region_name == moto_env["AWS_DEFAULT_REGION"]


def test_every_aws_service_reads_the_same_env_file(services: dict[str, Any]) -> None:
    for name in AWS_SERVICES:
        assert dc.env_files(services[name]) == [("docker/aws-moto.env", True)], name


def test_one_variable_switches_every_aws_service_to_another_env_file() -> None:
    switched = dc.load(env={"FACEIDX_AWS_ENV_FILE": "/home/me/faceidx-aws.env"})
    for name in AWS_SERVICES:
        assert dc.env_files(switched["services"][name]) == [("/home/me/faceidx-aws.env", True)], name


def test_moto_service_runs_the_launcher_with_the_local_batch_stand_in(services: dict[str, Any]) -> None:
    """The moto service is built on the worker image and runs submitted jobs as worker processes."""
    import re
    from importlib.metadata import version

    moto = services["moto"]
    assert moto["build"]["dockerfile"] == "docker/moto-batch.Dockerfile"
    assert moto["build"]["context"] == "."
    assert moto["build"]["args"]["WORKER_IMAGE"] == services["worker"]["image"], "FROM the worker image"
    env = dc.environment(moto)
    assert env["FACEIDX_LOCAL_BATCH"] == "1", "submitted jobs must run workers, not succeed at once"
    assert env["FACEIDX_REQUIRE_GPU"] == "0"
    dockerfile = (dc.REPO / "docker" / "moto-batch.Dockerfile").read_text()
    assert re.search(r"^ARG WORKER_IMAGE=faceidx-worker:local$", dockerfile, re.M)
    assert re.search(r"^FROM \$\{WORKER_IMAGE\}$", dockerfile, re.M)
    assert f'"moto[server]=={version("moto")}"' in dockerfile, "pin moto to the tested release"
    assert "COPY docker/moto_serve.py /faceidx/moto_serve.py" in dockerfile
    assert moto["entrypoint"] == ["python", "/faceidx/moto_serve.py"]
    ignored = (dc.REPO / "docker" / "moto-batch.Dockerfile.dockerignore").read_text().split()
    for copied in ("dev/faceidx_dev/local", "docker/moto_serve.py"):
        assert f"!{copied}" in ignored, f"{copied} must be in the build context"
    assert [str(port) for port in moto["ports"]] == [f"127.0.0.1:5000:{_moto_port(services)}"]


def test_moto_setup_runs_the_mounted_script_after_init(services: dict[str, Any]) -> None:
    setup = services["moto-setup"]
    assert setup["entrypoint"] == ["/entrypoint", "python", "/faceidx/moto_setup.py"]
    assert setup["command"] == ["setup"]
    assert {m.target: m.source for m in dc.mounts(setup)}[
        "/faceidx/moto_setup.py"
    ] == "./docker/moto_setup.py"
    assert setup["depends_on"]["moto"]["condition"] == "service_healthy"
    assert setup["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert setup.get("restart", "no") == "no"


def test_worker_defaults_are_what_moto_setup_and_the_bootstrap_create(
    services: dict[str, Any], moto_env: dict[str, str]
) -> None:
    from faceidx.infra.values import VALUES_BY_PARAM

    endpoint = dc.parse_connection(moto_env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"]
    worker = services["worker"]
    env = dc.environment(worker)
    assert env["AWS_ENDPOINT_URL"] == endpoint
    queue_name = VALUES_BY_PARAM["queue_name"].default
    assert env["FACEIDX_QUEUE_URL"] == f"{endpoint}/{ACCOUNT_ID}/{queue_name}"  # moto's URL for that queue
    assert env["FACEIDX_OUTPUT_URI"] == dc.load_docker_script("moto_setup").OUTPUT_URI
    assert env["FACEIDX_REQUIRE_GPU"] == "0", "a laptop has no GPU: the local worker must run on the CPU"
    assert worker["build"] == {"context": "./worker", "dockerfile": "Dockerfile"}
    assert worker["profiles"] == ["worker"], "compose must not start workers by itself"
    assert worker["depends_on"]["moto"]["condition"] == "service_healthy"


# --- the Airflow services ---------------------------------------------------------------------------------


def test_airflow_components_share_one_extended_image(services: dict[str, Any]) -> None:
    for name, command in AIRFLOW_COMPONENTS.items():
        service = services[name]
        assert service["command"] == command
        assert service["restart"] == "always"
        assert service["healthcheck"]["test"], f"{name} has no healthcheck"
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in AIRFLOW_IMAGE_SERVICES:
        assert services[name]["build"] == {"context": ".", "dockerfile": "docker/airflow.Dockerfile"}, name
        assert services[name]["image"] == "faceidx-airflow:3.3.2", name


def test_airflow_environment_is_local_executor_on_postgres(services: dict[str, Any]) -> None:
    env = dc.environment(services["airflow-scheduler"])
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    database = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] or "")
    assert database.hostname in services
    postgres = dc.environment(services[database.hostname])
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_execution_api_url_points_at_the_api_server(services: dict[str, Any]) -> None:
    env = dc.environment(services["airflow-scheduler"])
    url = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] or "")
    assert url.hostname == "airflow-apiserver"
    assert url.path == "/execution/"
    assert [str(port) for port in services["airflow-apiserver"]["ports"]] == [f"127.0.0.1:8080:{url.port}"]


def test_airflow_options_in_the_environment_exist_and_are_current(services: dict[str, Any]) -> None:
    from airflow.configuration import conf

    described = conf.configuration_description
    old_names = {(section, option) for section, option, _version in conf.deprecated_options.values()}
    problems = []
    for name, service in services.items():
        for key in dc.environment(service):
            if not key.startswith("AIRFLOW__"):
                continue
            _, section, option = key.lower().split("__", 2)
            options = described.get(section, {}).get("options", {})
            if option not in options:  # AIRFLOW__S__O_CMD / _SECRET name the same option
                option = option.removesuffix("_cmd").removesuffix("_secret")
            if option not in options:
                problems.append(f"{name}: {key} is not an option of Airflow's [{section}] section")
            if (section, option) in old_names:
                problems.append(f"{name}: {key} is a deprecated name")
    assert not problems, problems


def test_secrets_are_generated_not_fixed(services: dict[str, Any]) -> None:
    """airflow-init's generated airflow.cfg holds the JWT secret and fernet key: the env must not pin them."""
    for name in AIRFLOW_IMAGE_SERVICES:
        env = dc.environment(services[name])
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
            assert key not in env, f"{name} sets {key}: every component would not share the generated one"


def test_simple_auth_manager_user_matches_the_password_file_init_writes(services: dict[str, Any]) -> None:
    init_env = dc.environment(services["airflow-init"])
    users = dc.environment(services["airflow-apiserver"])["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert users == f"{init_env['_AIRFLOW_WWW_USER_USERNAME']}:admin"
    assert (init_env["_AIRFLOW_WWW_USER_USERNAME"], init_env["_AIRFLOW_WWW_USER_PASSWORD"]) == (
        "airflow",
        "airflow",
    )
    password_file = init_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] or ""
    config_volume = next(
        m.target for m in dc.mounts(services["airflow-apiserver"]) if m.source == "airflow-config"
    )
    assert password_file.startswith(config_volume + "/"), "the api-server must see the file init writes"


def test_airflow_init_script_is_valid_bash_and_writes_the_password_file(
    services: dict[str, Any], tmp_path: Path
) -> None:
    init = services["airflow-init"]
    assert init["entrypoint"] == "/bin/bash"
    assert init["user"] == "0:0"
    flag, script = init["command"]
    assert flag == "-c"
    check = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    assert "/entrypoint airflow config list" in script  # generates the shared airflow.cfg
    assert 'chown -R "50000:0" /opt/airflow/{logs,config}' in script
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    # The password-file line, run as written, produces the JSON the SimpleAuthManager reads.
    [line] = [ln.strip() for ln in script.splitlines() if "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in ln]
    target = tmp_path / "passwords.json"
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(target),
        "_AIRFLOW_WWW_USER_USERNAME": "airflow",
        "_AIRFLOW_WWW_USER_PASSWORD": 'pa ss"word',
    }
    subprocess.run(["bash", "-c", line.replace("python -c", f"{sys.executable} -c", 1)], env=env, check=True)
    assert json.loads(target.read_text()) == {"airflow": 'pa ss"word'}
