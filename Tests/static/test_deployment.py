"""Static checks that the Docker deployment and the native scripts describe the same system.

Nothing here builds or runs a container (there may be no Docker engine). Instead the test reads
compose.yaml, Dockerfile, .env.example, docker/postgres-init.sh, .dockerignore, and compares them with the
sources of truth for the native run: scripts/lib.sh (which services start, on which ports, with which
environment; which databases and roles exist), Package.swift (which products exist) and the README's
configuration table. docs/DEPLOYMENT.md lists every setting that must agree and which test checks it.

Run: .pets/venv/bin/python -m pytest Tests/static -q   (requirements: Tests/static/requirements.txt)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_CLUSTER = ROOT / "compose.cluster.yaml"  # the opt-in three-node RabbitMQ cluster, an override
# Passed by lib.sh only with PETS_RABBIT_NODES > 1 and by compose only with compose.cluster.yaml (test_cluster_override).
CLUSTER_ONLY_VARIABLES = {"PETS_AMQP_URLS"}
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_SCRIPT = ROOT / "docker" / "postgres-init.sh"
LIB_SH = ROOT / "scripts" / "lib.sh"
PACKAGE_SWIFT = ROOT / "Package.swift"
README = ROOT / "README.md"

INFRASTRUCTURE = {"postgres", "rabbitmq"}
# Set by the image for every container, not by lib.sh: the native run relies on the default `Public`, a path
# relative to the repository (its working folder); the image's files live in /app/Public.
IMAGE_ONLY_VARIABLES = {"PETS_WEB_ROOT"}
SECRET_MARKERS = ("PASSWORD", "SECRET", "TOKEN", "PETS_PW_", "PETS_AMQP_PW_", "COOKIE")
DEFINITIONS_SCRIPT = ROOT / "docker" / "rabbitmq-definitions.sh"
BROKER_ENTRYPOINT = ROOT / "docker" / "rabbitmq-entrypoint.sh"


# ---------------------------------------------------------------------------------------------------------------
# Readers


def read(path: Path) -> str:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    return path.read_text(encoding="utf-8")


def shell_function(text: str, name: str) -> str:
    """The body of a top-level bash function `name() {` ... `}` in lib.sh."""
    match = re.search(rf"^{re.escape(name)}\(\) \{{\n(.*?)^\}}", text, re.S | re.M)
    assert match, f"scripts/lib.sh has no function {name}"
    return match.group(1)


def shell_array(text: str, name: str) -> list[str]:
    match = re.search(rf"^\s*(?:local\s+)?{name}=\(([^)]*)\)", text, re.M)
    assert match, f"no array {name}=(...)"
    return shlex.split(match.group(1))


def case_arms(body: str) -> dict[str, str]:
    """`Name) command ;;` lines of a case statement -> {Name: command}."""
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\s*(\w+)\)\s*(.*?)\s*;;\s*$", body, re.M)}


class Lib:
    """What scripts/lib.sh says about the system."""

    def __init__(self) -> None:
        self.text = read(LIB_SH)
        self.services: list[str] = shell_array(self.text, "PETS_SERVICES")
        self.databases: list[str] = shell_array(self.text, "PETS_DATABASES")
        self.defaults: dict[str, str] = dict(
            re.findall(r':\s*"\$\{(\w+):=([^}]*)\}"', shell_function(self.text, "pets_defaults"))
        )
        # Service -> port variable -> default port.
        self.ports: dict[str, int] = {}
        for service, command in case_arms(shell_function(self.text, "pets_service_port")).items():
            if service in self.services:
                # `echo "$PETS_ORDER_PORT"` or `base=$PETS_ORDER_PORT` (replicas add an offset to the base).
                var = re.findall(r"\$\{?(PETS_\w+_PORT)\}?", command)
                assert len(var) == 1, f"unexpected pets_service_port arm for {service}: {command}"
                self.ports[service] = int(self.defaults[var[0]])
        # Service -> database name (None: no database).
        self.db: dict[str, str | None] = {}
        for service, command in case_arms(shell_function(self.text, "pets_service_db")).items():
            if service in self.services:
                value = shlex.split(command)[1:]
                self.db[service] = value[0] if value and value[0] else None
        self.env = self._service_environment()

    def _service_environment(self) -> dict[str, dict[str, str | None]]:
        """Service -> {variable: literal value or None} that pets_start_service exports."""
        body = shell_function(self.text, "pets_start_service").replace("\\\n", " ")  # join continued lines
        common: dict[str, str | None] = {}
        with_db: dict[str, str | None] = {}
        per_service: dict[str, dict[str, str | None]] = {s: {} for s in self.services}
        in_db_block = False
        for line in body.splitlines():
            stripped = line.strip()
            if re.match(r"if \[\[ -n \$db \]\]", stripped):
                in_db_block = True
                continue
            if in_db_block and stripped == "fi":
                in_db_block = False
                continue
            arm = re.match(r"(\w+)\)\s*(export\s.*?)\s*;;$", stripped)
            statement = arm.group(2) if arm else stripped
            if not statement.startswith("export ") or statement.startswith("export -n"):
                continue
            names: dict[str, str | None] = {}
            for word in shlex.split(statement)[1:]:
                name, eq, value = word.partition("=")
                assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"cannot read export word {word!r} in lib.sh"
                names[name] = value if eq else None
            if arm:
                per_service[arm.group(1)].update(names)
            elif in_db_block:
                with_db.update(names)
            else:
                common.update(names)
        assert common and with_db, "could not read the environment pets_start_service exports"
        result = {}
        for service in self.services:
            env = dict(common)
            if self.db[service]:
                env.update(with_db)
            env.update(per_service[service])
            result[service] = env
        return result

    def resolve(self, value: str) -> str:
        """Expands $PETS_X / ${PETS_X} with lib.sh's defaults."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.defaults[m.group(1)], value)


class Readme:
    """The README's configuration table: variable -> (default text, services that use it)."""

    def __init__(self, services: list[str]) -> None:
        text = read(README)
        section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
        self.rows: dict[str, tuple[str, set[str]]] = {}
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 3 or not cells[0].startswith("`"):
                continue
            names, default, used_by = cells
            users_text = used_by.split("(")[0]
            named = {s for s in services if re.search(rf"\b{s}\b", users_text)}
            if users_text.strip().startswith("all but"):
                users = set(services) - named
            elif users_text.strip().startswith("all"):
                users = set(services)
            else:
                users = named
            for name in re.findall(r"`([A-Z_][A-Z0-9_]*)`", names):
                self.rows[name] = (default, users)
        assert "PETS_HTTP_PORT" in self.rows, "README configuration table not found"

    def variables_for(self, service: str) -> set[str]:
        return {name for name, (_, users) in self.rows.items() if service in users}


def package_products() -> list[str]:
    """The executable products that are services (Services/NAME); tools such as Tools/Loadgen are not deployed."""
    names = re.findall(r'\.executable\(\s*name:\s*"(\w+)"', read(PACKAGE_SWIFT))
    return [name for name in names if (PACKAGE_SWIFT.parent / "Services" / name).is_dir()]


def env_example() -> dict[str, str]:
    values = {}
    for line in read(ENV_EXAMPLE).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, eq, value = line.partition("=")
            assert eq, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


# Compose interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}, ${NAME?err},
# ${NAME:+alt}, ${NAME+alt} (the forms the Compose specification defines).
INTERPOLATION = re.compile(r"\$(?:(\$)|\{(\w+)(?:(:?[-?+])([^}]*))?\}|(\w+))")


def interpolate(value: str, env: dict[str, str]) -> str:
    def substitute(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        present = name in env and (env[name] != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":?", "?"):
            if not present:
                raise KeyError(f"compose needs {name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if present else ""
        return env.get(name, "")

    return INTERPOLATION.sub(substitute, value)


def variables_in(value: str) -> list[tuple[str, str | None]]:
    """[(NAME, operator or None)] referenced by a compose string ($$ is a literal dollar, not a reference)."""
    return [(m.group(2) or m.group(5), m.group(3)) for m in INTERPOLATION.finditer(value) if not m.group(1)]


def walk_strings(node: Any):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)
    elif isinstance(node, str):
        yield node


def resolve_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: resolve_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_tree(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


class Dockerfile:
    """Instructions (continuations joined, comments dropped), grouped by stage."""

    def __init__(self) -> None:
        text = read(DOCKERFILE)
        logical, current = [], ""
        for raw in text.splitlines():
            if not current and (raw.lstrip().startswith("#") or not raw.strip()):
                continue
            if raw.lstrip().startswith("#"):
                continue  # a comment line inside a continued instruction
            if raw.rstrip().endswith("\\"):
                current += raw.rstrip()[:-1] + " "
            else:
                logical.append(current + raw.strip())
                current = ""
        assert not current, "Dockerfile ends inside a continued line"
        self.global_args: dict[str, str] = {}
        self.stages: list[dict[str, Any]] = []
        for line in logical:
            instruction, _, rest = line.partition(" ")
            instruction = instruction.upper()
            rest = re.sub(r"\s+", " ", rest.strip())
            if instruction == "FROM":
                image, _, alias = rest.partition(" AS ") if " AS " in rest else rest.partition(" as ")
                image = re.sub(r"\$\{(\w+)\}", lambda m: self.global_args[m.group(1)], image.strip())
                self.stages.append({"image": image, "name": alias.strip() or None, "instructions": []})
            elif not self.stages:
                assert instruction == "ARG", f"only ARG may come before the first FROM, not {instruction}"
                name, _, default = rest.partition("=")
                self.global_args[name] = default
            else:
                self.stages[-1]["instructions"].append((instruction, rest))
        assert self.stages, "Dockerfile has no FROM"

    def stage(self, name: str) -> dict[str, Any]:
        for stage in self.stages:
            if stage["name"] == name:
                return stage
        raise AssertionError(f"Dockerfile has no stage named {name}")

    def runs(self, stage: dict[str, Any]) -> list[str]:
        return [rest for instruction, rest in stage["instructions"] if instruction == "RUN"]

    @staticmethod
    def apt_installs(runs: list[str]) -> set[str]:
        packages: set[str] = set()
        for run in runs:
            for m in re.finditer(r"apt-get\s+(?:-\S+\s+)*install\s+((?:[^&;|]+))", run):
                packages |= {w for w in m.group(1).split() if not w.startswith("-")}
        return packages

    def env(self, stage: dict[str, Any]) -> dict[str, str]:
        values = {}
        for instruction, rest in stage["instructions"]:
            if instruction == "ENV":
                for word in shlex.split(rest):
                    name, _, value = word.partition("=")
                    values[name] = value
        return values


# ---------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def lib() -> Lib:
    return Lib()


@pytest.fixture(scope="module")
def readme(lib: Lib) -> Readme:
    return Readme(lib.services)


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(read(COMPOSE))  # also resolves the YAML anchors and << merges, as Compose does
    assert isinstance(data, dict) and "services" in data
    return data


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """compose.yaml as `docker compose config` would see it with the values of .env.example."""
    return resolve_tree(raw_compose, env_example())


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile()


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in compose["services"].items() if name not in INFRASTRUCTURE}


def compose_name(service: str) -> str:
    return service.lower()


# ---------------------------------------------------------------------------------------------------------------
# (a) compose.yaml is valid Compose


def run_schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.fail("check-jsonschema is not installed: pip install -r Tests/static/requirements.txt")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_file_matches_the_compose_specification():
    result = run_schema_check(COMPOSE)
    assert result.returncode == 0, f"compose.yaml is not valid Compose:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(
    "breakage",
    [
        ("  order:\n", "  order:\n    no_such_key: 1\n"),
        ("        condition: service_healthy\n", "        condition: service_ready\n"),
        ("services:\n", "services: [\n"),
    ],
    ids=["unknown-key", "bad-enum", "bad-yaml"],
)
def test_schema_check_rejects_a_broken_compose_file(tmp_path: Path, breakage: tuple[str, str]):
    """The validator really validates: the same check on a damaged copy must fail."""
    old, new = breakage
    text = read(COMPOSE)
    assert old in text, f"compose.yaml no longer contains {old!r}; update this test"
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert run_schema_check(broken).returncode != 0


def test_compose_has_no_version_key(raw_compose: dict[str, Any]):
    assert "version" not in raw_compose, "the Compose specification dropped `version:`"


# ---------------------------------------------------------------------------------------------------------------
# (b) compose.yaml and the native scripts describe the same system


def test_same_five_services(lib: Lib, compose: dict[str, Any]):
    products = package_products()
    assert sorted(lib.services) == sorted(products), "lib.sh's PETS_SERVICES and Package.swift's products differ"
    assert set(app_services(compose)) == {compose_name(s) for s in lib.services}
    assert INFRASTRUCTURE <= set(compose["services"])
    for service in lib.services:
        build = compose["services"][compose_name(service)]["build"]
        assert build["context"] == ".", f"{service}: build context must be the repository"
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert build["args"]["PRODUCT"] == service, f"{service}: build arg PRODUCT must be {service}"
        assert set(build["args"]) == {"PRODUCT"} | set(BASE_IMAGE_VARIABLES), f"{service}: unexpected build args"


# Build args of the Dockerfile's base images -> the compose variable that sets each one (scripts/test-compose
# points them at stand-in images; a user gets the official ones).
BASE_IMAGE_VARIABLES = {"SWIFT_IMAGE": "PETS_SWIFT_IMAGE", "RUNTIME_IMAGE": "PETS_RUNTIME_IMAGE"}
INFRASTRUCTURE_IMAGES = {
    "postgres": ("PETS_POSTGRES_IMAGE", "postgres:15"),
    "rabbitmq": ("PETS_RABBITMQ_IMAGE", "rabbitmq:3.13-management"),
}


def test_images_default_to_the_official_ones(raw_compose: dict[str, Any], dockerfile: Dockerfile):
    """Every base image can be swapped through one variable whose default is the official image, the same one the
    Dockerfile names; scripts/test-compose sets exactly these variables to its stand-ins."""
    test_compose = read(ROOT / "scripts" / "test-compose")
    for service, (variable, official) in INFRASTRUCTURE_IMAGES.items():
        image = raw_compose["services"][service]["image"]
        assert image == f"${{{variable}:-{official}}}", f"{service}: image must be ${{{variable}:-{official}}}"
        assert re.search(rf"\b{variable}=", test_compose), f"scripts/test-compose must set {variable}"
    for name, spec in raw_compose["services"].items():
        if name in INFRASTRUCTURE:
            continue
        for arg, variable in BASE_IMAGE_VARIABLES.items():
            default = dockerfile.global_args[arg]
            assert spec["build"]["args"][arg] == f"${{{variable}:-{default}}}", (
                f"{name}: build arg {arg} must be ${{{variable}:-{default}}}, the Dockerfile's default"
            )
            assert re.search(rf"\b{variable}=", test_compose), f"scripts/test-compose must set {variable}"


def test_same_http_ports(lib: Lib, readme: Readme, compose: dict[str, Any]):
    readme_ports = {name: int(port) for name, port in re.findall(r"(\w+) (\d+)", readme.rows["PETS_HTTP_PORT"][0])}
    assert readme_ports == lib.ports, "README's PETS_HTTP_PORT defaults differ from lib.sh's"
    for service, port in lib.ports.items():
        spec = compose["services"][compose_name(service)]
        assert spec["environment"]["PETS_HTTP_PORT"] == str(port), f"{service}: PETS_HTTP_PORT"
        health = " ".join(spec["healthcheck"]["test"])
        assert re.search(rf"curl -fsS .*http://127\.0\.0\.1:(\$\{{PETS_HTTP_PORT\}}|{port})/health", health), (
            f"{service}: the health check must GET /health on the service's own port"
        )


def test_published_ports(lib: Lib, compose: dict[str, Any]):
    """Clients reach Order, Notifier and Orchestrator on the native ports; the participants are not published,
    so `--scale inventory=2 --scale payment=2` works."""
    published = {"Order", "Notifier", "Orchestrator"}
    for service, port in lib.ports.items():
        ports = compose["services"][compose_name(service)].get("ports", [])
        if service in published:
            assert len(ports) == 1, f"{service}: expected one published port"
            host_port, container_port = str(ports[0]).split(":")[-2:]
            assert (host_port, container_port) == (str(port), str(port)), f"{service}: publish {port}:{port}"
        else:
            assert not ports, f"{service} must not publish a port (it would block --scale)"
        assert "container_name" not in compose["services"][compose_name(service)]


def test_same_databases_and_roles(lib: Lib, readme: Readme, compose: dict[str, Any], raw_compose: dict[str, Any]):
    readme_dbs = re.findall(r"`(\w+)`", readme.rows["PETS_DB_NAME"][0].split(";")[0])
    assert readme_dbs == lib.databases, "README's database list differs from lib.sh's PETS_DATABASES"
    assert sorted(d for d in lib.db.values() if d) == sorted(lib.databases)
    assert 'local var="PETS_PW_${1^^}"' in shell_function(lib.text, "pets_db_password")
    postgres_env = raw_compose["services"]["postgres"]["environment"]
    for service, db in lib.db.items():
        raw_env = raw_compose["services"][compose_name(service)]["environment"]
        if db is None:
            assert not {"PETS_DB_NAME", "PETS_DB_USER", "PETS_DB_PASSWORD", "PETS_PG_HOST"} & set(raw_env)
            continue
        assert raw_env["PETS_DB_NAME"] == db and raw_env["PETS_DB_USER"] == db, f"{service}: database/role {db}"
        password_var = f"PETS_PW_{db.upper()}"  # the name pets_db_password uses, and the init script
        assert variables_in(raw_env["PETS_DB_PASSWORD"]) == [(password_var, ":?")], f"{service}: PETS_DB_PASSWORD"
        assert variables_in(postgres_env[password_var]) == [(password_var, ":?")], (
            f"the postgres container must get {password_var} for docker/postgres-init.sh"
        )


def test_same_environment_variable_names(lib: Lib, readme: Readme, compose: dict[str, Any], dockerfile: Dockerfile):
    image_env = {
        n for n in dockerfile.env(dockerfile.stages[-1]) if n.startswith("PETS_") or n in ("LOG_LEVEL", "MALLOC_ARENA_MAX")
    }
    assert "PETS_HTTP_HOST" in image_env and "MALLOC_ARENA_MAX" in image_env
    assert image_env - {"PETS_HTTP_HOST", "MALLOC_ARENA_MAX"} <= IMAGE_ONLY_VARIABLES, "unexpected PETS_* ENV in the image"
    # The same allocator setting in both ways of running (resident memory is part of the benchmark's bar).
    assert dockerfile.env(dockerfile.stages[-1])["MALLOC_ARENA_MAX"] == "2"
    assert "export MALLOC_ARENA_MAX=2" in lib.text
    for service in lib.services:
        compose_env = set(compose["services"][compose_name(service)]["environment"])
        native_env = set(lib.env[service]) - CLUSTER_ONLY_VARIABLES
        assert compose_env | image_env == native_env | IMAGE_ONLY_VARIABLES, (
            f"{service}: compose (+ image ENV) passes {sorted(compose_env | image_env)}, "
            f"scripts/lib.sh passes {sorted(native_env)}"
        )
        assert compose_env <= readme.variables_for(service), (
            f"{service}: {sorted(compose_env - readme.variables_for(service))} not in README's table for it"
        )


def test_same_broker_tuning(lib: Lib, compose: dict[str, Any]):
    """RabbitMQ runs with the same Erlang flags both ways (schedulers that sleep rather than spin when idle)."""
    native = lib.defaults["PETS_RABBIT_ERL_ARGS"]
    assert "+sbwt none" in native
    assert "$PETS_RABBIT_ERL_ARGS" in shell_function(lib.text, "pets_write_rabbit_config")
    assert compose["services"]["rabbitmq"]["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] == native


def test_same_environment_values(lib: Lib, compose: dict[str, Any], raw_compose: dict[str, Any]):
    services = compose["services"]
    rabbit_env = raw_compose["services"]["rabbitmq"]["environment"]
    for service in lib.services:
        env = services[compose_name(service)]["environment"]
        raw_env = raw_compose["services"][compose_name(service)]["environment"]
        url = urlsplit(env["PETS_AMQP_URL"])
        assert (url.scheme, url.hostname, url.port, url.path) == ("amqp", "rabbitmq", 5672, "/"), service
        # Its own broker user, as pets_amqp_url names it natively, never the administrator.
        user, password = raw_env["PETS_AMQP_URL"].split("://", 1)[1].split("@", 1)[0].split(":${", 1)
        assert user == f"pets-{service.lower()}", f"{service}: broker user {user}"
        assert variables_in("${" + password) == [(f"PETS_AMQP_PW_{service.upper()}", ":?")], service
        assert variables_in(rabbit_env[f"PETS_AMQP_PW_{service.upper()}"]) == variables_in("${" + password), (
            f"the broker container must get PETS_AMQP_PW_{service.upper()} to create pets-{service.lower()}")
        assert env["LOG_LEVEL"] == lib.defaults["LOG_LEVEL"]
        if lib.db[service]:
            assert env["PETS_PG_HOST"] == "postgres" and env["PETS_PG_HOST"] in services
            assert env["PETS_PG_PORT"] == "5432" == lib.defaults["PETS_PG_PORT"]
    order, notifier = services["order"]["environment"], services["notifier"]["environment"]
    # URLs handed to browsers name the published ports on the host, exactly as the native run does.
    for name, value in lib.env["Order"].items():
        if name.startswith("PETS_PUBLIC_"):
            assert order[name] == lib.resolve(value), f"Order: {name}"
    native = urlsplit(lib.resolve(lib.env["Notifier"]["PETS_ORCHESTRATOR_URL"]))
    ours = urlsplit(notifier["PETS_ORCHESTRATOR_URL"])
    assert (ours.scheme, ours.hostname, ours.port) == (native.scheme, "orchestrator", native.port)
    assert services["inventory"]["environment"]["PETS_INITIAL_STOCK"] == lib.defaults["PETS_INITIAL_STOCK"]
    # Only the shop's own origins may call the operator API from a browser, the same ones both ways.
    assert services["orchestrator"]["environment"]["PETS_SHOP_ORIGINS"] == lib.resolve(
        lib.env["Orchestrator"]["PETS_SHOP_ORIGINS"])


def test_same_broker_users_and_topology():
    """One script declares the topology and the per-service users: lib.sh imports it, compose's broker loads it."""
    lib_text = read(LIB_SH)
    assert "docker/rabbitmq-definitions.sh" in shell_function(lib_text, "pets_configure_broker")
    assert "pets_configure_broker" in shell_function(lib_text, "pets_start_rabbitmq")
    url = shell_function(lib_text, "pets_amqp_url")
    assert "amqp://pets-%s:%s@" in url and 'PETS_AMQP_PW_${service^^}' in url, "pets_amqp_url names the users"
    raw = yaml.safe_load(read(COMPOSE))["services"]["rabbitmq"]
    assert raw["entrypoint"] == ["sh", "/pets/rabbitmq-entrypoint.sh"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in raw["volumes"] if v.startswith("./")}
    assert mounts == {"./docker/rabbitmq-entrypoint.sh": "/pets/rabbitmq-entrypoint.sh",
                      "./docker/rabbitmq-definitions.sh": "/pets/rabbitmq-definitions.sh"}
    assert "/pets/rabbitmq-definitions.sh" in read(BROKER_ENTRYPOINT)
    services = shell_array(lib_text, "PETS_SERVICES")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update({f"PETS_AMQP_PW_{s.upper()}": f"pw{i}abc" for i, s in enumerate(services)})
    result = subprocess.run(["sh", str(DEFINITIONS_SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    definitions = json.loads(result.stdout)
    assert {u["name"] for u in definitions["users"]} == {f"pets-{s.lower()}" for s in services}
    assert all(u["tags"] == "" for u in definitions["users"]), "no service user may be tagged administrator"
    for permission in definitions["permissions"]:
        assert permission["configure"] in ("^$", r"^amq\.gen-.*$"), permission
        assert ".*" not in (permission["read"], permission["write"]), permission
    bad = dict(env, PETS_AMQP_PW_ORDER="not url-safe")
    assert subprocess.run(["sh", str(DEFINITIONS_SCRIPT)], env=bad, capture_output=True, text=True).returncode != 0


def test_start_order_and_restart(lib: Lib, compose: dict[str, Any]):
    for service in lib.services:
        spec = compose["services"][compose_name(service)]
        assert spec["restart"] == "unless-stopped", service
        expected = {"rabbitmq", "orchestrator"} if service == "Notifier" else {"postgres", "rabbitmq"}
        assert spec["depends_on"] == {d: {"condition": "service_healthy"} for d in expected}, service
    for name in INFRASTRUCTURE:
        assert "healthcheck" in compose["services"][name], name
        assert compose["services"][name].get("volumes"), f"{name} needs a named volume for its data"
    assert compose["services"]["postgres"]["image"] == "postgres:15"
    assert compose["services"]["rabbitmq"]["image"].startswith("rabbitmq:3.13-management")
    assert compose["services"]["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]


def test_every_compose_variable_is_in_env_example(raw_compose: dict[str, Any]):
    example = env_example()
    used: dict[str, set[str | None]] = {}
    cluster = yaml.safe_load(read(COMPOSE_CLUSTER))
    for text in [*walk_strings(raw_compose), *walk_strings(cluster)]:
        for name, op in variables_in(text):
            used.setdefault(name, set()).add(op)
    assert used, "compose.yaml uses no variables at all?"
    assert set(used) <= set(example), f"missing from .env.example: {sorted(set(used) - set(example))}"
    assert set(example) <= set(used), f"unused in compose.yaml: {sorted(set(example) - set(used))}"
    for name, ops in used.items():
        if any(marker in name for marker in SECRET_MARKERS):
            assert ops == {":?"}, f"{name} is a secret: only ${{{name}:?...}}, never a default"
            assert example[name].startswith("change-me"), f".env.example must hold a placeholder for {name}"
    # compose must start with the example file as it is (every required variable set, every default shown).
    resolve_tree(raw_compose, example)
    resolve_tree(cluster, example)


def test_cluster_override(compose: dict[str, Any]):
    """compose.cluster.yaml: valid, three nodes in one cluster, and every service told about all three."""
    result = run_schema_check(COMPOSE_CLUSTER)
    assert result.returncode == 0, result.stdout + result.stderr
    cluster = resolve_tree(yaml.safe_load(read(COMPOSE_CLUSTER)), env_example())
    nodes = ["rabbitmq", "rabbitmq2", "rabbitmq3"]
    conf = read(ROOT / "docker" / "rabbitmq-cluster.conf")
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    for k, node in enumerate(nodes, start=1):
        assert f"cluster_formation.classic_config.nodes.{k} = rabbit@{node}" in conf
        spec = cluster["services"][node]
        assert "PETS_RABBITMQ_ERLANG_COOKIE" in spec["environment"], node
        assert any("rabbitmq-cluster.conf" in v for v in spec["volumes"]), node
        if k > 1:
            assert spec["hostname"] == node and spec["restart"] == "unless-stopped"
            assert spec["image"] == compose["services"]["rabbitmq"]["image"], f"{node}: same image as rabbitmq"
            assert spec["depends_on"] == {nodes[k - 2]: {"condition": "service_healthy"}}, "nodes start in turn"
    for name, spec in compose["services"].items():
        if name in INFRASTRUCTURE:
            continue
        override = cluster["services"][name]
        urls = override["environment"]["PETS_AMQP_URLS"].split(",")
        assert [urlsplit(u).hostname for u in urls] == nodes, name
        assert urls[0] == spec["environment"]["PETS_AMQP_URL"], f"{name}: node 1 is compose.yaml's rabbitmq"
        assert override["depends_on"] == {"rabbitmq3": {"condition": "service_healthy"}}, name
    for text in walk_strings(raw_compose):
        for m in re.finditer(r"\$\{(\w+):-([^}]*)\}", text):
            assert example[m.group(1)] == m.group(2), f".env.example shows a different default for {m.group(1)}"


def test_env_example_names_the_native_secrets(lib: Lib):
    assert '"${PETS_SECRET_KEYS[@]}"' in shell_function(lib.text, "pets_secrets")
    native = shell_array(lib.text, "PETS_SECRET_KEYS")
    assert {"PETS_TOKEN_SECRET", "PETS_OPERATOR_TOKEN", "PETS_AMQP_PW_ORDER"} <= set(native)
    assert set(native) <= set(env_example()), "use the same secret names as .pets/secrets.env"
    assert "openssl rand" in read(ENV_EXAMPLE)


def test_secrets_stay_out_of_git_and_images():
    gitignore = read(ROOT / ".gitignore").splitlines()
    assert ".env" in gitignore, ".env must be git-ignored"
    dockerignore = [line.strip() for line in read(ROOT / ".dockerignore").splitlines()]
    for entry in [".build", ".build-*", ".pets", ".git", "bench/out", "__pycache__", "*.pyc", "Package.resolved", ".env"]:
        assert entry in dockerignore, f".dockerignore must exclude {entry}"
    for needed in ["Package.swift", "Shared", "Services", "Tests", "Public", "docker"]:
        assert needed not in dockerignore, f".dockerignore must not exclude {needed}"
    for line in read(DOCKERFILE).splitlines():
        if re.match(r"\s*(ENV|ARG|LABEL)\b", line):
            assert not re.search(r"PASSWORD|SECRET|PETS_PW_|TOKEN", line), f"secret-looking setting: {line}"


# ---------------------------------------------------------------------------------------------------------------
# (c) The Dockerfile builds what the native build builds; the init script creates what lib.sh creates


def test_dockerfile_builds_the_package_products(lib: Lib, dockerfile: Dockerfile, compose: dict[str, Any]):
    products = package_products()
    assert products, "no executable products found in Package.swift"
    build = dockerfile.stage("build")
    assert re.fullmatch(r"swift:6\.\d+-bookworm", build["image"]), "build on the official Swift image, bookworm"
    runs = dockerfile.runs(build)
    # The native build: pets_build defaults to release and runs `swift build -c "$config"`.
    pets_build = shell_function(lib.text, "pets_build")
    assert "local config=${1:-release}" in pets_build and 'swift build -c "$config"' in pets_build
    # All products are compiled in one step that does not depend on PRODUCT, so every image shares it and
    # `docker compose build` compiles the package graph once (not once per service).
    compile_step = [r for r in runs if "swift build -c release --product" in r]
    assert len(compile_step) == 1, "one build step for all products"
    loop = re.fullmatch(
        r'for product in ([\w ]+); do swift build -c release --product "\$product" --static-swift-stdlib \|\| exit 1; done',
        compile_step[0],
    )
    assert loop, f"unexpected build step: {compile_step[0]}"
    assert sorted(loop.group(1).split()) == sorted(products), "the build step must compile every service product"
    assert "PRODUCT" not in compile_step[0]
    instructions = build["instructions"]
    assert instructions.index(("RUN", compile_step[0])) < instructions.index(("ARG", "PRODUCT")), (
        "compile before declaring PRODUCT, so the layer is the same for every image"
    )
    assert any('swift build -c release --show-bin-path' in r and '"$bin/$PRODUCT"' in r for r in runs)
    # The PRODUCT guard lists exactly the products Package.swift declares, as do compose's build args.
    guard = next((r for r in runs if 'case "$PRODUCT" in' in r), None)
    assert guard, "the build stage must refuse an unknown PRODUCT"
    listed = re.search(r'case "\$PRODUCT" in\s+([\w|]+)\)', guard)
    assert listed and sorted(listed.group(1).split("|")) == sorted(products)
    assert sorted(s["build"]["args"]["PRODUCT"] for s in app_services(compose).values()) == sorted(products)


def test_dockerfile_layers_and_sources(dockerfile: Dockerfile):
    steps = dockerfile.stage("build")["instructions"]
    flat = [f"{i} {r}" for i, r in steps]

    def index(text: str) -> int:
        found = [n for n, step in enumerate(flat) if step.startswith(text)]
        assert found, f"build stage lacks `{text}`"
        return found[0]

    assert index("COPY Package.swift ./") < index("RUN swift package resolve") < index("COPY Shared/")
    assert index("RUN swift package resolve") < index("ARG PRODUCT"), "declare PRODUCT after the shared layers"
    copied = {r.split()[0].rstrip("/") for i, r in steps if i == "COPY" and not r.startswith("--from")}
    # Every top-level folder a target lives in (path: "Shared/AMQP", "Tests/...") must be in the build context.
    target_paths = set(re.findall(r'path:\s*"([^"]+)"', read(PACKAGE_SWIFT)))
    missing = {p for p in target_paths if not any(p == c or p.startswith(c + "/") for c in copied)}
    assert target_paths and not missing, f"not copied into the build: {sorted(missing)}"
    # Nothing else from Tests/: an edit to a Python suite must not invalidate the compile layer.
    tests_copied = {c for c in copied if c == "Tests" or c.startswith("Tests/")}
    assert tests_copied <= target_paths, f"copy only the Swift test targets, not {sorted(tests_copied - target_paths)}"


def test_dockerfile_installs_what_the_native_build_needs(lib: Lib, dockerfile: Dockerfile):
    native = set(shell_array(shell_function(lib.text, "pets_install_packages"), "wanted"))
    build_deps = {"librabbitmq-dev", "pkg-config"}
    assert build_deps <= native, "lib.sh no longer installs the build dependencies this test expects"
    providers = set(re.findall(r'\.apt\(\[([^\]]*)\]\)', read(PACKAGE_SWIFT))[0].replace('"', "").replace(",", " ").split())
    build_stage = dockerfile.apt_installs(dockerfile.runs(dockerfile.stage("build")))
    assert build_deps | providers <= build_stage, f"build stage misses {sorted(build_deps | providers - build_stage)}"

    runtime = dockerfile.stages[-1]
    assert runtime["image"] == "debian:bookworm-slim"
    runtime_pkgs = dockerfile.apt_installs(dockerfile.runs(runtime))
    # librabbitmq4 is what librabbitmq-dev links against; libcurl4 backs FoundationNetworking; curl runs the
    # compose health checks.
    assert {"librabbitmq4", "libcurl4", "ca-certificates", "tzdata", "curl"} <= runtime_pkgs
    assert not any(p.endswith("-dev") for p in runtime_pkgs), "no build dependencies in the runtime image"
    if any("FoundationNetworking" in p.read_text() for p in (ROOT / "Services").rglob("*.swift")):
        assert "libcurl4" in runtime_pkgs


def test_runtime_image_settings(dockerfile: Dockerfile):
    runtime = dockerfile.stages[-1]
    env = dockerfile.env(runtime)
    assert env["PETS_HTTP_HOST"] == "0.0.0.0", "a container must listen on all interfaces"
    assert env["PETS_WEB_ROOT"] == "/app/Public"
    assert env["SWIFT_BACKTRACE"].startswith("enable=yes,sanitize=yes,threads=all,images=all,interactive=no")
    instructions = runtime["instructions"]
    assert ("WORKDIR", "/app") in instructions
    assert ("USER", "10001:10001") in instructions or ("USER", "10001") in instructions
    assert any(i == "RUN" and "--uid 10001" in r for i, r in instructions)
    entrypoint = [r for i, r in instructions if i == "ENTRYPOINT"]
    assert entrypoint == ['["/app/service"]']
    assert any(i == "RUN" and r == 'ln -s "/app/$PRODUCT" /app/service' for i, r in instructions)
    assert not any(i == "HEALTHCHECK" for i, _ in instructions), "health checks live in compose.yaml"
    assert any(i == "COPY" and r.startswith("--from=web") and r.endswith("/app/Public/") for i, r in instructions)
    web_runs = " ".join(dockerfile.runs(dockerfile.stage("web")))
    assert "mkdir -p Public" in web_runs, "a missing Public/ must not break the build"


def sql_template(text: str) -> tuple[list[str], list[str], list[str]]:
    """(echo'd statements, per-database heredoc lines without the password line, the password lines)."""
    echoes = re.findall(r"^\s*echo '([^']*;)'$", text, re.M)
    heredoc = re.search(r"cat <<EOF\n(.*?)\nEOF\n", text, re.S)
    assert heredoc, "no per-database SQL heredoc found"
    lines = [line.replace("\\\\", "\\") for line in heredoc.group(1).splitlines()]
    password = [line for line in lines if re.match(r"\\(set|getenv) pw ", line)]
    return echoes, [line for line in lines if line not in password], password


def test_init_script_creates_what_lib_sh_creates(lib: Lib, raw_compose: dict[str, Any]):
    init = read(INIT_SCRIPT)
    assert shell_array(init, "PETS_DATABASES") == lib.databases
    native_echoes, native_sql, native_pw = sql_template(shell_function(lib.text, "pets_create_databases"))
    init_echoes, init_sql, init_pw = sql_template(init)
    assert native_echoes == init_echoes == [
        "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;",
        "REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;",
    ]
    assert init_sql == native_sql, "the init script's SQL must be the same as pets_create_databases'"
    assert native_pw == ["\\set pw '$(pets_db_password \"$db\")'"]
    assert init_pw == ["\\getenv pw PETS_PW_${db^^}"], "passwords from the environment, via psql's \\getenv"
    assert "psql -X -q -v ON_ERROR_STOP=1" in init
    assert os.access(INIT_SCRIPT, os.X_OK), "docker/postgres-init.sh must be executable"
    mounts = raw_compose["services"]["postgres"]["volumes"]
    assert "./docker/postgres-init.sh:/docker-entrypoint-initdb.d/10-pets.sh:ro" in mounts
    subprocess.run(["bash", "-n", str(INIT_SCRIPT)], check=True)
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(INIT_SCRIPT)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_compose_test_scripts_are_valid_shell():
    """scripts/test-compose and the stand-ins' entry points parse, are executable, and the stand-in Dockerfiles
    copy the entry points they name (the scripts run only where podman can run, so this is all CI checks)."""
    standins = ROOT / "docker" / "standins"
    scripts = [ROOT / "scripts" / "test-compose", *sorted(standins.glob("*.sh"))]
    assert len(scripts) == 3, [s.name for s in scripts]
    for script in scripts:
        assert os.access(script, os.X_OK), f"{script.relative_to(ROOT)} must be executable"
        subprocess.run(["bash", "-n", str(script)], check=True)
        if shutil.which("shellcheck"):
            result = subprocess.run(["shellcheck", "-x", str(script)], capture_output=True, text=True)
            assert result.returncode == 0, result.stdout
    for name in ("postgres", "rabbitmq"):
        text = read(standins / f"{name}.Dockerfile")
        assert f"COPY {name}-entrypoint.sh /usr/local/bin/docker-entrypoint.sh" in text
        assert 'ENTRYPOINT ["docker-entrypoint.sh"]' in text
