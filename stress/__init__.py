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

Every storm books parties (issue 20): random parties of 1..6 tickets (seeded), and
users who then give back part of their party (`tickets`: k) or all of it; the
background's events differ in `maxOvertakes` (0, 1, 3, 10). Each user's answers are
followed in order, tickets counted (tests/fault_scenarios.py, `Told`): a party
answered booked with k holds k booked tickets unless a later answer gave some back,
a party answered waitlisted with k waits with k or was served whole, a cancel's
`tickets` and `remainingTickets` add up; after a 503 or no answer both outcomes stay
possible until a later answer says which. After each scenario the invariants (no
idle fit among them) and the journal replayed through the reference model of the
rule (tests/invariants.py) must hold.

About 80,000 requests in all, in 6 to 9 minutes on a shared 2-core machine.

Each scenario runs with BOOKING_LOCK=table unless `--lock-mode table row` (or
`row`) says otherwise; `--only NAME ...` runs some of them. It prints one table:
scenario, requests, acknowledged (2xx), the other answers by status, invariant
violations and other broken promises (both must be 0), the recovery time, and
the group-commit batches the scenario's servers logged (LOG_LEVEL=INFO: count,
mean, p99 and max size, failed and rerun; stress/batches.py); then what each
scenario saw. Exits 1 if anything was broken, keeping the servers' logs.
"""
