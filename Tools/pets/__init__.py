"""What the Python test suites (Tests/e2e, api, browser, faults) and the tools (Tools/chaos, which Tests/cluster runs,
and Tools/bench) share, so that each thing is written once:

  pets.secrets    the secrets scripts/lib.sh generates: exported, or read from .pets/secrets.env
  pets.libsh      the driver of scripts/lib.sh: its functions run in bash on an environment of our own, and the
                  processes it starts (pid files, /proc)
  pets.catalogue  the pets the shop sells, read from GET /catalogue; the seed's ids only for the tests of the seed
  pets.orders     order bodies, placing an order, what it costs
  pets.websocket  an order's status stream: the callback URL pointed at a Notifier, reading it to the end
  pets.services   where the running system's services answer, and whether they are up
  pets.waiting    wait_until

The suites find it through the `pythonpath` of their pytest.ini; the tools put Tools/ on sys.path in their
__main__.py. secrets, libsh, catalogue and waiting need only the standard library (Tools/bench runs with `-S`).
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
