-- wrk script: POST /api/v1/tasks for the project in $PROJECT_ID.
-- $DISPATCH=true queues each task for an agent; false only stores it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"project_id":"%s","title":"benchmark task","description":"measure me","role":"developer","priority":"medium","dispatch":%s}',
  os.getenv("PROJECT_ID"), os.getenv("DISPATCH") or "false")
