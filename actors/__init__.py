"""Actors: the runtime (``runtime``) and the actor kinds built on it.

An actor is one trio task, one bounded inbox and private state. Other code
holds an ``ActorRef`` and either ``tell``s it (no reply; OTP's cast) or
``ask``s it (reply within a timeout; OTP's call).
"""
