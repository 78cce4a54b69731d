"""`python -m stress` (`make stress`): the fault scenarios of tests/test_faults.py, larger.

Real gunicorn (4 workers) on the real MariaDB, on loopback only, in its own
database (STRESS_MYSQL_URL, default
mysql+pymysql://root@127.0.0.1:3306/booking_stress?charset=utf8mb4), dropped and
made anew at the start and dropped at the end. The scenarios and the fault
tooling are the tests' own (tests/fault_scenarios.py, tests/faults.py):

- the database cut off mid-storm through a TCP proxy: refused, reset, and black-holed
  (connections hang: only the service's own socket timeouts notice), then restored;
- another session holding LOCK TABLES ... WRITE, then an event row FOR UPDATE;
- workers SIGKILLed mid-request, then the master; a new server on the same database;
- clients that go away mid-request (short body, unread answer, RST, stalled body).

Each scenario runs with BOOKING_LOCK=table unless `--lock-mode table row` (or
`row`) says otherwise; `--only NAME ...` runs some of them. It prints one table:
scenario, requests, acknowledged (2xx), the other answers by status, invariant
violations and other broken promises (both must be 0), and the recovery time;
then what each scenario saw. Exits 1 if anything was broken.
"""
