"""Loopback fake servers, one per wire protocol, faithful to the real providers.

See ../shared/reference/provider-protocols.md for the protocol facts each one follows.
"""
