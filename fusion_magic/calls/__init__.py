"""One call of any kind with the policy around it: resolving a model id (``call.prepare``), retries,
timeout, timing, pricing and events (``call.run_call``), the recording cache, and the settings (keys, base
URLs, defaults) they read. Above the providers, which only translate; below the job kinds.
"""
