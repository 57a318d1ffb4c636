"""The compiler: the pipeline's stages (`pipeline.STAGES`), the generated Forge module (`codegen`),
TTIR lowering (`lower_ttir`), binary building (`binary_builder`) and the compile report (`report`)."""
