"""The load harness: scenarios that drive a server through the real protocol.

Run as ``realtime-server bench SCENARIO``. Clients can be spread over several
processes so the harness is not the bottleneck; each scenario prints a table
and one line of JSON.
"""
