package main

// webhookConfig is how `rdev serve` treats webhook endpoints.
type webhookConfig struct {
	AllowHTTP bool
}

func (c *webhookConfig) register(f *envFlags) {
	f.Bool(&c.AllowHTTP, "webhook-allow-http", "RDEV_WEBHOOK_ALLOW_HTTP", false, "accept plain http webhook URLs, for local development (default: https only)")
}
