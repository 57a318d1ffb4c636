"""timm and torchvision architectures of the model matrix: timm.create_model(pretrained=False) and
torchvision.models.get_model(weights=None), random weights (batch-norm statistics randomized so the
folding is exercised). push: a small family member (or the entry's constructor arguments) at a small
image and 10 classes; nightly: the named model at 224 pixels with its released head.

`arch` names the architecture the entry counts as in the report: a family that transformers or
another library already covers counts once, and such duplicates run at nightly only
(`tiers=("nightly",)`), which keeps the default run's push tier to one entry per architecture.
"""
from forge_fe.tools import matrix
from forge_fe.tools.matrix_builders import OutputField, _randn, timm_model, torchvision_model


def vit_args(image=32, patch=8):
    return dict(img_size=image, patch_size=patch, embed_dim=64, depth=2, num_heads=4)


TIMM = [
    timm_model("resnet18", arch="resnet", tiers=("nightly",)),
    timm_model("resnext26ts", arch="resnext"),
    timm_model("seresnext26t_32x4d", arch="seresnext"),
    timm_model("regnety_002", arch="regnet", tiers=("nightly",)),
    timm_model("efficientnet_lite0", arch="efficientnet-lite"),
    timm_model("mobilenetv3_small_050", arch="mobilenet_v3"),
    timm_model("mobilenetv4_conv_small", arch="mobilenet_v4"),
    timm_model("ghostnet_050", arch="ghostnet"),
    timm_model("ghostnetv2_100", arch="ghostnetv2", tiers=("nightly",)),
    timm_model("densenet121", arch="densenet", push=dict(block_config=(1, 1, 1, 1), growth_rate=8)),
    timm_model("dla34", arch="dla"),
    timm_model("dpn48b", arch="dpn"),
    timm_model("hrnet_w18_small", arch="hrnet", push_image=64),
    timm_model("inception_v3", arch="inception_v3", push_image=96),
    timm_model("inception_v4", arch="inception_v4", push_image=96),
    timm_model("inception_resnet_v2", arch="inception_resnet_v2", push_image=96),
    timm_model("xception41", arch="xception", push_image=64),
    timm_model("mixnet_s", arch="mixnet"),
    timm_model("mnasnet_small", arch="mnasnet"),
    timm_model("rexnet_100", arch="rexnet", push=dict(width_mult=0.5)),
    timm_model("selecsls42b", arch="selecsls"),
    timm_model("ese_vovnet19b_dw", arch="vovnet"),
    timm_model("res2net50_14w_8s", arch="res2net"),
    timm_model("resnest14d", arch="resnest"),
    timm_model("skresnet18", arch="sknet"),
    timm_model("cspresnet50", arch="cspnet"),
    timm_model("cspdarknet53", arch="cspdarknet", push_image=64),
    timm_model("darknet17", arch="darknet", push_image=64),
    timm_model("nf_resnet26", arch="nfnet"),
    timm_model("repvgg_a0", arch="repvgg"),
    timm_model("hardcorenas_a", arch="hardcorenas"),
    timm_model("lcnet_050", arch="lcnet"),
    timm_model("fbnetc_100", arch="fbnet"),
    timm_model("tinynet_e", arch="tinynet"),
    timm_model("mobileone_s0", arch="mobileone"),
    timm_model("fastvit_t8", arch="fastvit", push_image=64),
    timm_model("efficientvit_m0", arch="efficientvit", push_image=64),
    timm_model("edgenext_xx_small", arch="edgenext", push_image=64),
    timm_model("coatnet_nano_rw_224", arch="coatnet", push=dict(img_size=64), push_image=64),
    timm_model("maxvit_nano_rw_256", arch="maxvit", push=dict(img_size=64), push_image=64, image=256),
    timm_model("cait_xxs24_224", arch="cait", push=vit_args(), push_image=32),
    timm_model("xcit_nano_12_p16_224", arch="xcit", push=dict(img_size=32, depth=2), push_image=32),
    timm_model("twins_pcpvt_small", arch="twins", push=dict(depths=(1, 1, 1, 1)), push_image=64),
    timm_model("tnt_s_patch16_224", arch="tnt", push=dict(img_size=32, depth=2), push_image=32),
    timm_model("pit_ti_224", arch="pit", push=dict(img_size=64), push_image=64),
    timm_model("gcvit_xxtiny", arch="gcvit", push=dict(img_size=64), push_image=64),
    timm_model("davit_tiny", arch="davit", push=dict(depths=(1, 1, 1, 1)), push_image=64),
    timm_model("nest_tiny", arch="nest", tiers=("nightly",)),
    timm_model("sequencer2d_s", arch="sequencer", push=dict(layers=(1, 1, 1, 1)), push_image=64),
    timm_model("mixer_s32_224", arch="mlp_mixer", push=dict(img_size=64), push_image=64),
    timm_model("resmlp_12_224", arch="resmlp", push=dict(img_size=32), push_image=32),
    timm_model("gmlp_ti16_224", arch="gmlp", push=dict(img_size=32), push_image=32),
    timm_model("convmixer_768_32", arch="convmixer"),
    timm_model("convit_tiny", arch="convit", push=vit_args()),
    timm_model("volo_d1_224", arch="volo", push=dict(img_size=32), push_image=32),
    timm_model("visformer_tiny", arch="visformer", push=dict(img_size=64), push_image=64),
    timm_model("eva02_tiny_patch14_224", arch="eva02", push=dict(img_size=28, depth=2), push_image=28),
    timm_model("deit3_small_patch16_224", arch="deit3", push=vit_args()),
    timm_model("regnetz_b16", arch="regnetz"),
    timm_model("levit_128s", arch="levit", push_image=64, push=dict(img_size=64)),
    timm_model("poolformerv2_s12", arch="poolformerv2", tiers=("nightly",)),
    timm_model("mvitv2_tiny", arch="mvitv2", push=dict(img_size=64), push_image=64),
    timm_model("efficientformer_l1", arch="efficientformer", push_image=224),
    timm_model("efficientformerv2_s0", arch="efficientformerv2", push_image=224),
    timm_model("tiny_vit_5m_224", arch="tiny_vit", push_image=224),
    timm_model("inception_next_tiny", arch="inception_next", push=dict(depths=(1, 1, 1, 1))),
    timm_model("starnet_s1", arch="starnet"),
    timm_model("hgnetv2_b0", arch="hgnetv2"),
    timm_model("repghostnet_050", arch="repghostnet"),
    timm_model("fasternet_t0", arch="fasternet"),
    timm_model("mambaout_femto", arch="mambaout"),
    timm_model("botnet26t_256", arch="botnet", push=dict(img_size=64), push_image=64, image=256),
    timm_model("halonet26t", arch="halonet", image=256, tiers=("nightly",)),
    timm_model("lambda_resnet26t", arch="lambda_resnet", push=dict(img_size=64), push_image=64, image=256),
    timm_model("gernet_s", arch="gernet"),
    timm_model("resnetv2_50", arch="resnetv2"),
    timm_model("ecaresnet26t", arch="ecaresnet"),
    timm_model("gcresnet33ts", arch="gcresnet"),
    timm_model("vgg11_bn", arch="vgg"),
    timm_model("pnasnet5large", arch="pnasnet", push_image=64, image=331, tiers=("push",)),
    timm_model("coat_lite_tiny", arch="coat", push=dict(img_size=64), push_image=64),
    timm_model("crossvit_tiny_240", arch="crossvit", image=240, tiers=("nightly",)),
    timm_model("shvit_s1", arch="shvit", push_image=64),
    timm_model("rdnet_tiny", arch="rdnet", tiers=("nightly",)),
]


def segmentation(model):
    return OutputField(model, "out")


TORCHVISION = [
    torchvision_model("alexnet", arch="alexnet", push_image=64),
    torchvision_model("squeezenet1_1", arch="squeezenet", push_image=64),
    torchvision_model("googlenet", arch="googlenet", push=dict(aux_logits=False, init_weights=True), push_image=64),
    torchvision_model("shufflenet_v2_x0_5", arch="shufflenet_v2"),
    torchvision_model("mnasnet0_5", arch="mnasnet", tiers=("nightly",)),
    torchvision_model("wide_resnet50_2", arch="wide_resnet"),
    torchvision_model("resnext50_32x4d", arch="resnext", tiers=("nightly",)),
    torchvision_model("mobilenet_v3_small", arch="mobilenet_v3", tiers=("nightly",)),
    torchvision_model("efficientnet_b0", arch="efficientnet", tiers=("nightly",)),
    torchvision_model("efficientnet_v2_s", arch="efficientnet_v2"),
    torchvision_model("regnet_y_400mf", arch="regnet", tiers=("nightly",)),
    torchvision_model("convnext_tiny", arch="convnext", tiers=("nightly",)),
    torchvision_model("swin_t", arch="swin", push_image=64, tiers=("nightly",)),
    torchvision_model("swin_v2_t", arch="swinv2", push_image=64, tiers=("nightly",)),
    torchvision_model("vit_b_16", arch="vit", tiers=("nightly",)),
    torchvision_model("maxvit_t", arch="maxvit", push_image=64, tiers=("nightly",)),
    torchvision_model("fcn_resnet50", arch="fcn", kind="segmentation", outputs=segmentation, push_image=64,
                      push=dict(num_classes=4)),
    torchvision_model("deeplabv3_mobilenet_v3_large", arch="deeplabv3", kind="segmentation", outputs=segmentation,
                      push_image=64, push=dict(num_classes=4)),
    torchvision_model("lraspp_mobilenet_v3_large", arch="lraspp", kind="segmentation", outputs=segmentation,
                      push_image=64, push=dict(num_classes=4)),
    torchvision_model("ssdlite320_mobilenet_v3_large", arch="ssdlite", kind="detection", push_image=64,
                      push=dict(num_classes=4),
                      xfail=("import", "torch.export: the post-processing (score filtering, NMS) has data-dependent output sizes")),
    torchvision_model("fasterrcnn_mobilenet_v3_large_320_fpn", arch="faster_rcnn", kind="detection", push_image=64,
                      push=dict(num_classes=4),
                      xfail=("import", "torch.export: the post-processing (score filtering, NMS) has data-dependent output sizes")),
    torchvision_model("retinanet_resnet50_fpn", arch="retinanet", kind="detection", push_image=64,
                      push=dict(num_classes=4),
                      xfail=("import", "torch.export: the post-processing (score filtering, NMS) has data-dependent output sizes")),
    torchvision_model("r3d_18", arch="r3d", kind="video CNN",
                      inputs=lambda size: [_randn(1, 3, 4, 32, 32) if size == "push" else _randn(1, 3, 16, 112, 112)]),
]

CASES = TIMM + TORCHVISION

test_push, test_data_format, test_nightly = matrix.pytest_tests(CASES)
