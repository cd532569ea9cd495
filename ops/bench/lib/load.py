#!/usr/bin/env python3
"""Fill the event store through the real command API until it holds at least TARGET events:
POST /v1/resources:batch of 1,000 new storage accounts each (the records of
ops/bench/commands.d/batch.lua, in a subscription of their own), on CONNECTIONS keep-alive
connections, one thread each. Between rounds it counts es_events (psql, DATABASE_URL) and sizes
the next round by the events each record made in the last one (the evaluator may add its own).
Prints one line: RESULT records=… events=… seconds=… records_per_s=… events_per_s=…
(events: those added while loading, over the load's seconds). Standard library only.

  load.py --url http://127.0.0.1:18480 --key KEY --run ID --target-events N [--connections 4]
"""

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
import urllib.parse

BATCH = 1000
RECORD = (
    '{{"id":"/subscriptions/00000000-0000-4000-a000-{tid:012d}/resourceGroups/rg-load/providers/'
    'Microsoft.Storage/storageAccounts/{name}","name":"{name}","type":"Microsoft.Storage/storageAccounts",'
    '"location":"westeurope","kind":"StorageV2","tags":{{"env":"prod","owner":"bench","costCenter":"cc-{cc}"}},'
    '"properties":{{"supportsHttpsTrafficOnly":true,"minimumTlsVersion":"TLS1_2","allowBlobPublicAccess":false,'
    '"sku":{{"name":"Standard_LRS","tier":"Standard"}},"networkAcls":{{"defaultAction":"Deny"}}}}}}'
)


def count_events():
    out = subprocess.run(
        ["psql", os.environ["DATABASE_URL"], "-XAtqc", "SELECT count(*) FROM es_events"],
        capture_output=True, text=True, check=True,
    )
    return int(out.stdout.strip())


def body(run, batch):
    records = []
    for i in range(BATCH):
        n = batch * BATCH + i
        records.append(RECORD.format(tid=batch % 1000, name=f"sl{run}x{n}", cc=n % 97))
    return ('{"resources":[' + ",".join(records) + "]}").encode()


PROGRESS = {"posted": 0, "shown": time.monotonic(), "started": time.monotonic()}


def post_batches(url, key, run, batches, connections):
    """Posts the batches numbered in `batches` (an iterator shared by the threads)."""
    target = urllib.parse.urlsplit(url)
    failures = []
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while not failures:
            with lock:
                batch = next(batches, None)
            if batch is None:
                break
            conn.request("POST", "/v1/resources:batch", body(run, batch), headers)
            answer = conn.getresponse()
            text = answer.read()
            if answer.status != 200 or b'"error"' in text:
                failures.append(f"batch {batch}: HTTP {answer.status}: {text[:300]!r}")
            with lock:
                PROGRESS["posted"] += BATCH
                if time.monotonic() - PROGRESS["shown"] >= 10:
                    PROGRESS["shown"] = time.monotonic()
                    elapsed = PROGRESS["shown"] - PROGRESS["started"]
                    print(f"[load] {PROGRESS['posted']} records posted, {elapsed:.0f} s", file=sys.stderr)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"load: {failures[0]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--target-events", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()

    first = count_events()
    stored, per_record, next_batch, records = first, 1.0, 0, 0
    started = PROGRESS["started"] = PROGRESS["shown"] = time.monotonic()
    while stored < args.target_events:
        remaining = args.target_events - stored
        # The first round is small: it measures the events a record makes.
        want = remaining / per_record if records else min(remaining, 20 * BATCH)
        batches = max(1, -(-int(want) // BATCH))
        post_batches(args.url, args.key, args.run, iter(range(next_batch, next_batch + batches)), args.connections)
        next_batch += batches
        records += batches * BATCH
        before, stored = stored, count_events()
        per_record = max(1.0, (stored - before) / (batches * BATCH))
    seconds = time.monotonic() - started
    added = stored - first
    # No rate when there was nothing to load (the store already held the events).
    rate = (lambda n: f"{n / seconds:.1f}") if records else (lambda n: "-")
    print(
        f"RESULT records={records} events={added} stored={stored} seconds={seconds:.1f} "
        f"records_per_s={rate(records)} events_per_s={rate(added)}"
    )


if __name__ == "__main__":
    main()
