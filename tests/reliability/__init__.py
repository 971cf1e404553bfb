"""The reliability suite (issue 7): load, faults and bad input, bounded, self-stopping, loopback only.

- ``test_load``: 200 concurrent streaming clients against 4 slots and a queue of 10.
- ``test_faults``: every mock fault, disconnect phase and a slow reader back to back on one daemon; failed starts.
- ``test_bad_input``: over 2,000 hypothesis-generated chat and embeddings bodies over real HTTP.
- ``test_slowloris``: partial headers and partial bodies end on their own and hold no slot.
- ``test_hostile_connections``: HTTP/2 and h2c, malformed framing and smuggling, bad Host headers, duplicate
  Authorization, WebSocket clients that stop reading with many queued frames, a stop they cannot hold up;
  ``test_hostile_process`` repeats them against a real process, ending with SIGTERM and exit 0.
- ``test_connection_faults``: a fault injected into one streaming connection (h11, hypercorn, trinfer's protocol)
  ends that connection alone, logged once with its id; the rest is served and the stop completes.
- ``test_big_body``: ``/health`` on both listeners and small chats keep completing while a body just under
  ``max_body_bytes`` (one huge message; 240,000 short ones) is sent, parsed and answered.

The security regressions, one test per threat (body cap, auth on every route, ready gating, write stall, log
redaction, open-bind refusal), live in ``tests/security/``; WebSocket auth in ``tests/ws/test_auth.py``.
No test here asserts a duration: performance goals are measured in ``bench/`` (docs/benchmarks.md).
"""
