"""The dynamic side of lockgate: database, git, HTTP and Kubernetes."""
