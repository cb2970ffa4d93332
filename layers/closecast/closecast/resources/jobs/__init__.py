"""/jobs/: long-running work (training, inference, day store writes) as jobs on SQS, answered 202."""
