"""Benchmark of the booking service: real gunicorn + MariaDB on loopback.

`python -m bench` (or `make bench`) creates scratch databases (booking_bench,
and booking_bench_growth for the million-row growth case; BENCH_MYSQL_URL),
starts gunicorn on each (WEB_CONCURRENCY workers, default 2, x GUNICORN_THREADS
threads from gunicorn.conf.py, default 16; RATE_LIMIT=off, LOG_LEVEL=INFO),
drives them with an asyncio + aiohttp load generator (and with wrk, on a site of
its own with the rate limiter on, for /healthz against the hot event: `--only wrk`;
skipped if wrk is not installed), checks the invariants
after every scenario, reads the group-commit batches each scenario caused from
the servers' logs, measures the ceilings (HTTP alone, the transaction alone),
writes bench/results/latest.{json,md,png}, draws deploy/grafana-dashboard.json's
panels from a scraped scenario into bench/results/dashboard.png (alone:
`python -m bench.dashboard`, about 40 s), and drops the databases. `--quick`
is a scaled-down run (the dashboard scenario keeps its size); `--profile` adds a
py-spy profile of the workers during a second hot-event run; `--only NAME,...`
runs only the scenarios named (opening, growth, ...), writing its files to a
temporary directory. Only loopback is ever contacted.

Modules, one job each:
  settings   the sizes of a full and a quick run
  server     the scratch database and the gunicorn under test
  api        a small synchronous client for set-up and checks
  load       the load generator: N requests in flight, every latency recorded
  cpu        who used the two cores: generator, gunicorn, mariadbd, the machine
  batches    the group-commit batches of a stretch, from the servers' log lines
  stats      percentiles and error counts of a run
  seed       rows written straight in SQL (big waiting lists, a million bookings, parties,
             an on-sale's queue)
  checks     the invariants, in tickets, through SQL and through the API
  scenarios  the scenarios and the HTTP ceiling
  parties    the hot event again, each user booking a party of 1-6 tickets
  holds      the hot event again with checkout holds: everyone books, the held claim
  opening    a scheduled on-sale's opening: 10,000 and 100,000 queued parties, PATCH
             salesOpen true, with bookings and reads of it and of another event meanwhile
  wrk        /healthz, the hot event (wrk_book.lua) and /healthz again measured by wrk, a
             client that costs next to nothing, on a site with the rate limiter on
  webhooks   the hot event again while a worker delivers its journal to a webhook, between
             two runs of the same burst without the worker
  dashboard  a hot sale, cancels and a webhook worker on a site of its own, /metrics scraped
  scrape     the /metrics scraper: every sample of every scrape, with its time
  promql     the dashboard's PromQL over the scrapes: rate, sum by, histogram_quantile
  receiver   the webhook receiver: 204 at once, every arrival kept
  growth     latency against event and table size, small vs large, parties of 1 and 1-6
  growth_checks  what the growth cycles' answers must show
  direct     the transaction ceiling: BookingService.book and raw SQL, no HTTP
  profile    optional py-spy sampling of the workers
  ratios     the ratios printed after the tables, against their targets
  report     the tables and ratio lines, JSON and Markdown
  plot       the plot
  dashboard_plot  the dashboard's panels, computed from the scrapes and drawn
"""
