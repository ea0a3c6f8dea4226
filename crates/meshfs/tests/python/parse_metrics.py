#!/usr/bin/env python3
"""Fetch a meshfs node's /metrics and parse it with the real Prometheus exposition parser
(Debian's python3-prometheus-client). Prints one JSON object: {"families": {name: type},
"samples": {"name{label=value,...}": value}} (labels sorted), or exits non-zero with the
parser's complaint if the text is not valid exposition format.

usage: parse_metrics.py http://HOST:PORT/metrics
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=10) as resp:
        ctype = resp.headers.get("Content-Type", "")
        text = resp.read().decode("utf-8")
    families, samples = {}, {}
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            key = f"{s.name}{{{labels}}}" if labels else s.name
            if key in samples:
                sys.exit(f"duplicate sample {key}")
            samples[key] = s.value
    print(json.dumps({"content_type": ctype, "families": families, "samples": samples}))


if __name__ == "__main__":
    main()
