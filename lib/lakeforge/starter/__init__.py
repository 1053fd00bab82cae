"""`lakeforge init`: a starter dataset config from a data file, without Spark.

`sample` reads the first rows of the file (the only I/O besides the command),
`infer` and `profile` say what each column is, `plan` chooses the key, label,
task and features, `render` writes the YAML with its REVIEW comments, and
`command` wires them to the command line.
"""
