"""Spark job entry scripts: parse args, build work items, mapInPandas a package function, commit."""
