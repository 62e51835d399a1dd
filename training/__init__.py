"""Role-model training: chat examples -> LoRA SFT -> merge -> GGUF -> quantize -> verify.

torch, transformers, peft and gguf are imported only inside this package (the bot never needs
them). Importing ``training`` itself is cheap; the stages import what they need.

    training.config     TrainingConfig: the [training] table, on bot.config's engine (no torch)
    training.data       CraigslistBargains / Deal or No Deal dialogues -> role chat examples
    training.examples   chat-example JSONL reading, assistant-only loss mask
    training.modeling   base model references -> transformers (GGUF or HF checkpoint)
    training.fit        resumable LoRA fit (plain torch loop)
    training.merge      merge_and_unload -> an HF checkpoint directory
    training.export     merged checkpoint -> F16 GGUF -> quantized GGUFs
    training.verify     top-1 agreement of each GGUF with the merged model
    training.manifest   manifest.json writing (atomic; read with bot.llm.adapters' reader)
    training.pipeline   the stages (data, fit, merge, export, verify), as `haggle train` runs them
    training.tiny       a tiny random llama GGUF with a real tokenizer, for tests and benchmarks
"""
