"""Chaos run for AWSomePets: places orders while killing processes, then checks that nothing was lost.

It starts the whole system as separate processes (two replicas of every service, PostgreSQL, RabbitMQ and the
supervisor of scripts/lib.sh) in its own state folder (.pets/chaos, wiped at start) and on its own ports
(PostgreSQL 17432, AMQP 17672, HTTP 19080-19084 and replicas at +100), so it runs beside `scripts/up` and
`scripts/test`. While clients place a mix of orders (good ones, expired cards, quantity 11) and follow each over
its WebSocket, it SIGKILLs a random service instance every few seconds (the supervisor restarts it), kills the
RabbitMQ node and the PostgreSQL postmaster at least once each (`--rabbit-nodes 3`: a three-node cluster whose
nodes it kills in turn, one at a time), and injects a few poison messages. Then it stops
the chaos, waits for quiescence and checks the invariants:

  terminal    every accepted order ended `completed` or `cancelled`; no saga running or `needs_attention`
  payments    completed: exactly one charge of the order's amount and no refund; cancelled: net payment 0
  stock       per product: initial = on hand + quantities of completed orders; reservations match the outcome
  websocket   every subscriber got its order's final message, events in `seq` order without gaps
  queues      no message left in a queue or unacked; the dead-letter queue holds exactly the injected poison

It exits 1 when an invariant fails (or the chaos could not do what it must), 2 when the system did not start.
Run it from the project venv: .pets/venv/bin/python Tools/chaos (requirements: Tools/requirements.txt).

The modules:
  layout      where everything listens: ports (--slot, --port-base), service instances, broker nodes
  system      the private system, started, watched and stopped through scripts/lib.sh (pets.libsh)
  client      the operator's HTTP session and reads that try every replica
  load        the clients: orders placed (retried with one Idempotency-Key) and followed over the WebSocket
  faults      the chaos itself: SIGKILLs of service instances, RabbitMQ nodes and PostgreSQL; poison messages
  metrics     redeliveries and inbox duplicates, summed over every instance's lifetimes
  invariants  quiescence, then the checks above, and the evidence of each violation
  cli         the command line, the run from start to verdict, the summary
"""
