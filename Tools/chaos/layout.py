"""Where everything of a chaos run listens: the ports of its slot (or --port-base block), the service instances
(two replicas of each) and the broker nodes. `use_slot` sets them once, before anything starts; read RABBIT_NODES
as `layout.RABBIT_NODES`."""

from __future__ import annotations

# Own ports, all below the kernel's ephemeral range (32768+), distinct from `up` and `test`. `--slot N` shifts them
# (infrastructure by 5 N, HTTP by 200 N) and uses the folder .pets/chaos-N, so runs can go on side by side.
# A cluster (`--rabbit-nodes 3`) puts its nodes' AMQP ports in the slot's block (17672-17674 + 5 N) and moves
# distribution and management out of it (17772-17774 and 17872-17874, + 5 N). `--port-base B` replaces the whole
# layout by one block of B's own: PostgreSQL B+432, epmd B+369, AMQP B+672.., management B+680..,
# distribution B+772.., HTTP B+1080-B+1084 (replicas +100); its folder is .pets/chaos-pB.
PORTS: dict[str, int] = {}
BASE_PORT: dict[str, int] = {}
RABBIT_NODES = 1  # broker nodes; node K listens on PETS_AMQP_PORT + K - 1


def use_slot(slot: int, rabbit_nodes: int = 1, port_base: int | None = None) -> None:
    global RABBIT_NODES
    RABBIT_NODES = rabbit_nodes
    infra, http = 5 * slot, 200 * slot
    PORTS.clear()
    if port_base is not None:
        b = port_base
        PORTS.update({
            "PETS_PG_PORT": b + 432, "PETS_AMQP_PORT": b + 672, "PETS_RABBIT_DIST_PORT": b + 772,
            "PETS_EPMD_PORT": b + 369, "PETS_RABBIT_MGMT_PORT": b + 680,
            "PETS_ORDER_PORT": b + 1080, "PETS_NOTIFIER_PORT": b + 1081, "PETS_INVENTORY_PORT": b + 1082,
            "PETS_PAYMENT_PORT": b + 1083, "PETS_ORCHESTRATOR_PORT": b + 1084,
        })
    else:
        cluster = rabbit_nodes > 1
        PORTS.update({
            "PETS_PG_PORT": 17432 + infra, "PETS_AMQP_PORT": 17672 + infra,
            "PETS_RABBIT_DIST_PORT": (17772 if cluster else 17673) + infra,
            "PETS_EPMD_PORT": 17369 + infra, "PETS_RABBIT_MGMT_PORT": (17872 if cluster else 17674) + infra,
            "PETS_ORDER_PORT": 19080 + http, "PETS_NOTIFIER_PORT": 19081 + http, "PETS_INVENTORY_PORT": 19082 + http,
            "PETS_PAYMENT_PORT": 19083 + http, "PETS_ORCHESTRATOR_PORT": 19084 + http,
        })
    BASE_PORT.clear()
    BASE_PORT.update({s: PORTS[f"PETS_{s.upper()}_PORT"] for s in ("Order", "Notifier", "Inventory", "Payment",
                                                                   "Orchestrator")})


use_slot(0)
SERVICES = ["Inventory", "Payment", "Orchestrator", "Order", "Notifier"]
REPLICAS = 2
INSTANCES = [s if k == 1 else f"{s}-{k}" for s in SERVICES for k in range(1, REPLICAS + 1)]
HOST = "127.0.0.1"



def amqp_port(node: int) -> int:
    return PORTS["PETS_AMQP_PORT"] + node - 1


def instance_port(name: str) -> int:
    service, _, k = name.partition("-")
    return BASE_PORT[service] + 100 * (int(k or 1) - 1)


def service_urls(service: str) -> list[str]:
    return [f"http://{HOST}:{BASE_PORT[service] + 100 * k}" for k in range(REPLICAS)]
