"""bedside-lite: prune, quantize to int8, verify, evaluate and bench medical Keras models.

The Python API (`pipeline.api`): `build`, `bench`, `sweep`, `inspect`. Importing the
package imports no TensorFlow.
"""

from pipeline.api import bench, build, inspect, sweep

__all__ = ["bench", "build", "inspect", "sweep"]
