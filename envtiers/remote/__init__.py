"""What remote tasks (AWS Batch, Kubernetes) need from the launcher: the lock's files, shipped
through the flow's datastore (`shipping`), and fetched by the task's bootstrap (`fetch`)."""
