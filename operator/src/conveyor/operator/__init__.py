"""Conveyor's Kubernetes operator: the ConveyorService CRD and its reconcile loop."""
