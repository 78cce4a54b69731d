-- wrk script: POST /api/events/book, a distinct user per request.
-- Usage: wrk -t2 -c64 -d10s -s bench/wrk_book.lua URL -- EVENT_ID [FIRST_USER]
-- Thread k books users first + k * 10^8, then the next ones up, so no two requests of a
-- run book the same user (a thread sends far fewer than 10^8 in a run). Answers other than 201 are counted
-- and printed at the end: a booking run is measured only if every answer was 201.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  event_id = tonumber(args[1] or "1")
  first = tonumber(args[2] or "1")
  next_user = first + id * 100000000
  not_created = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local body = string.format('{"eventId": %d, "userId": %d}', event_id, next_user)
  next_user = next_user + 1
  return wrk.format(nil, "/api/events/book", nil, body)
end

function response(status, headers, body)
  if status ~= 201 then
    not_created = not_created + 1
  end
end

function done(summary, latency, requests)
  local refused = 0
  for _, thread in ipairs(threads) do
    refused = refused + thread:get("not_created")
  end
  io.write(string.format("not_201 %d\n", refused))
end
