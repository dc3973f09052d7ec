"""The paper's configurations under the import path of the original README."""
