"""The chat list's rules that REST and the socket share."""
