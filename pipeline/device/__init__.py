"""Bedside devices reached over SSH: where they are (`inventory`), the agent shipped to them
(`agent`, device_bench as a zipapp) and the transport (`ssh`, the system OpenSSH client)."""
