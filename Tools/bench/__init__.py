"""The AWSomePets benchmark driver. scripts/bench starts the servers and the services, then runs this.

    Tools/bench wait-ready --port P --since-ns T0 --name NAME --out FILE [--pid-file F] [--timeout S]
        Polls http://127.0.0.1:P/health every 10 ms until it answers 200; appends {"name", "ms"} (milliseconds
        since T0, a CLOCK_REALTIME timestamp in ns taken just before the service was started) to FILE.

    Tools/bench run [--quick] [--run-seconds N] ...
        Warm-up, throughput search, latency run at half the maximum, the Lab 1 stream measurements, while sampling
        every process's CPU and memory; writes bench/results.json and prints a summary against the bar.

Standard library only (with pets.secrets and pets.catalogue, which are too), so it runs in any python3
(scripts/bench uses the project venv when there is one).

The modules: procfs (CPU and memory of every process, from /proc), probe (HTTP to the services, and wait-ready),
benchmark (the runs: warm-up, search, latency, Lab 1's stream), summary (the bar, and the figures against it),
cli (the two commands).
"""
