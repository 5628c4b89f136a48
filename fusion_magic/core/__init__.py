"""What every job kind shares and nothing above it: errors, the one sync/async bridge (``runner``), the call
record (``record.CallRecord``, also named ``Response``), the open event base and call events, the ledger
frame and prices.

Imports nothing else from fusion_magic (an import-linter layers contract says so).
"""
