# Dev helper: compare edgevision vs timm logits for given model names (random weights, randomized BN).
# usage: .venv/bin/python tools/parity_check.py NAME [NAME...]
import edgevision as ev, torch, timm, sys, tempfile, os
torch.manual_seed(0)
def rand_bn(m):
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g)*0.1)
            mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g)*0.5+0.75)
            mod.weight.data.copy_(torch.rand(mod.weight.shape, generator=g)*0.5+0.75)
            mod.bias.data.copy_(torch.randn(mod.bias.shape, generator=g)*0.1)
for n in sys.argv[1:]:
    t = timm.create_model(n).eval(); rand_bn(t)
    p = tempfile.mktemp(suffix='.pth'); torch.save(t.state_dict(), p)
    m = ev.create_model(n).eval(); r = ev.load_weights(m, p, source='timm'); os.unlink(p)
    for res in [(224,224),(160,192)]:
        x = torch.randn(2,3,*res)
        with torch.no_grad(): d = (t(x)-m(x)).abs().max().item()
        print(n, res, f"{d:.2e}", r.source)
