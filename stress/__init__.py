"""`python -m stress` (`make stress`): the fault scenarios of tests/test_faults.py, larger.

Real gunicorn, as deployed (gunicorn.conf.py: 2 workers x 16 threads, so requests
wait at the lock together and commit in group-commit batches), on the real
MariaDB, on loopback only, in its own database (STRESS_MYSQL_URL, default
mysql+pymysql://root@127.0.0.1:3306/booking_stress?charset=utf8mb4), dropped and
made anew at the start and dropped at the end. The scenarios and the fault
tooling are the tests' own (tests/fault_scenarios.py, tests/faults.py):

- the database cut off mid-storm through a TCP proxy: refused, reset, and black-holed
  (connections hang: only the service's own socket timeouts notice), then restored;
- another session holding LOCK TABLES ... WRITE, then an event row FOR UPDATE;
- workers SIGKILLed mid-request, then the master; a new server on the same database;
- clients that go away mid-request (short body, unread answer, RST, stalled body).

Beside each scenario's own storm a background storm (stress/background.py: aiohttp
in another process, bookings and cancels of many users on events of its own) runs
through the fault; its acknowledged answers are checked against the database too.
Over 100,000 requests in all, in about 6 minutes on a 2-core machine.

Each scenario runs with BOOKING_LOCK=table unless `--lock-mode table row` (or
`row`) says otherwise; `--only NAME ...` runs some of them. It prints one table:
scenario, requests, acknowledged (2xx), the other answers by status, invariant
violations and other broken promises (both must be 0), the recovery time, and
the group-commit batches the scenario's servers logged (LOG_LEVEL=INFO: count,
mean, p99 and max size, failed and rerun; stress/batches.py); then what each
scenario saw. Exits 1 if anything was broken, keeping the servers' logs.
"""
