#!/usr/bin/env python3
import sys, probe, cases  # noqa
probe.run([a for a in sys.argv[1:] if not a.startswith("-")])
