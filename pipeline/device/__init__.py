"""The bench stage and the devices: `client` (the pipeline's one door to device_bench: in
process, in a child process or under another Python), `stage` (the build's bench stage),
`local` (what the report keeps of device_bench's JSON), and bedside devices reached over SSH:
`inventory`, `agent` (device_bench as a zipapp) and `ssh`/`remote` (the system OpenSSH client)."""
